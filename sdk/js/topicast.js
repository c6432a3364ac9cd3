// topicast.js: the browser client of topicast (docs/protocol.md).
// One ES module, no build step. Served by the server at /topicast.js.
//
//   import { connect } from "/topicast.js";
//   const client = await connect();            // same origin as the page
//   client.subscribe("scores", (msg) => console.log(msg.seq, msg.data));
//   await client.publish("chat", { text: "hi" });
//   client.close();

export async function connect(options = {}) {
  const base = options.url || location.origin;
  const client = new Client(base, options);
  await client._open();
  return client;
}

class Client {
  constructor(base, options) {
    this.base = base.replace(/\/$/, "");
    this.options = options;
    this.nextId = 1;
    this.pending = new Map();
    this.subs = new Map();
    this.closed = false;
  }

  _open() {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(this.base.replace(/^http/, "ws") + "/ws");
      this.ws = ws;
      ws.onopen = () => resolve();
      ws.onerror = () => reject(new Error("topicast: cannot connect"));
      ws.onmessage = (e) => {
        for (const line of String(e.data).split("\n")) {
          if (line) this._frame(JSON.parse(line));
        }
      };
      ws.onclose = (e) => {
        for (const p of this.pending.values()) p.reject(new Error(`topicast: closed (${e.code})`));
        this.pending.clear();
      };
    });
  }

  _frame(f) {
    if (f.op === "ping") { this.ws.send('{"op":"pong"}'); return; }
    if (f.op === "msg") { const s = this.subs.get(f.topic); if (s) s(f); return; }
    if (f.id && this.pending.has(f.id)) {
      const p = this.pending.get(f.id);
      this.pending.delete(f.id);
      if (f.op === "error") p.reject(Object.assign(new Error(f.message), { code: f.code }));
      else p.resolve(f);
    }
  }

  _request(cmd) {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.ws.send(JSON.stringify({ ...cmd, id }));
    });
  }

  subscribe(topic, onMessage) {
    this.subs.set(topic, onMessage);
    return this._request({ op: "sub", topic });
  }

  publish(topic, data) { return this._request({ op: "pub", topic, data }); }

  close() { this.closed = true; this.ws.close(1000); }
}
