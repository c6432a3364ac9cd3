// harness.js: what the browser tests drive through chromedp. Each function records a
// "run" (one subscriber) that the Go test reads back with T.result or T.wait. The
// topicast server is ?server=http://127.0.0.1:PORT; this page comes from another
// origin, as an application's page would.

const server = new URLSearchParams(location.search).get("server");
document.querySelector("#server").textContent = server;

const runs = new Map();
const logLines = [];

function log(line) {
  logLines.push(`${new Date().toISOString().slice(11, 23)} ${line}`);
  if (logLines.length > 400) logLines.splice(0, logLines.length - 400);
  schedule();
}

let scheduled = false;
function schedule() {
  if (scheduled) return;
  scheduled = true;
  setTimeout(render, 50);
}

function render() {
  scheduled = false;
  const rows = [];
  for (const r of runs.values()) {
    rows.push(`<tr><td>${r.name}</td><td>${r.api}</td><td>${r.transport}</td><td>${r.topic}</td>` +
      `<td>${r.seqs.length}</td><td class="${r.inOrder ? "ok" : "bad"}">${r.inOrder ? "yes" : "NO"}</td>` +
      `<td>${r.dg.length}${r.dgTopic ? "" : " (none asked)"}</td><td>${r.disconnects.length}` +
      `${r.disconnects.length ? " (" + r.disconnects.join(", ") + ")" : ""}</td><td>${r.events.length}</td></tr>`);
  }
  document.querySelector("#runs").innerHTML = rows.join("");
  const el = document.querySelector("#log");
  el.textContent = logLines.join("\n");
  el.scrollTop = el.scrollHeight;
}

function newRun(name, api, topic, dgTopic) {
  const r = {
    name, api, topic, dgTopic: dgTopic || "", transport: "",
    seqs: [], ns: [], dg: [], streamDg: [], ids: [],
    events: [], disconnects: [], connects: 0, inOrder: true, ready: null, close: () => {},
    subs: {}, extra: {}, datas: [], channels: {},
  };
  runs.set(name, r);
  schedule();
  return r;
}

// record files one msg frame (or topicast.js message) of run r.
function record(r, f, datagram) {
  if (f.topic === r.topic && !datagram) {
    const last = r.seqs.length ? r.seqs[r.seqs.length - 1] : null;
    if (last !== null && f.seq !== last + 1) {
      if (r.inOrder) log(`${r.name}: seq ${f.seq} after ${last}`);
      r.inOrder = false;
    }
    r.seqs.push(f.seq);
    r.ns.push(f.data && typeof f.data === "object" ? f.data.n : null);
  } else if (f.topic === r.dgTopic) {
    (datagram ? r.dg : r.streamDg).push(f.seq);
  }
  schedule();
}

function hexBytes(hex) {
  return new Uint8Array(hex.match(/[0-9a-f]{2}/gi).map((h) => parseInt(h, 16)));
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function summary(r) {
  return {
    transport: r.transport, seqs: r.seqs, ns: r.ns, dg: r.dg, streamDg: r.streamDg, ids: r.ids,
    events: r.events, disconnects: r.disconnects, connects: r.connects, inOrder: r.inOrder, ready: r.ready,
    extra: r.extra, datas: r.datas, channels: r.channels,
  };
}

// NDJSON over a byte stream: frames end with "\n" and may span chunks.
async function readLines(readable, onLine) {
  const reader = readable.getReader();
  const decoder = new TextDecoder();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += decoder.decode(value, { stream: true });
    let i;
    while ((i = buf.indexOf("\n")) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      if (line.trim()) onLine(line);
    }
  }
}

// tapChannels counts, in r.channels[label], the messages received on every data channel
// the page creates from now on, and keeps the last one of each label in r.lastChannel.
function tapChannels(r) {
  const create = RTCPeerConnection.prototype.createDataChannel;
  r.lastChannel = {};
  RTCPeerConnection.prototype.createDataChannel = function (label, ...rest) {
    const ch = create.call(this, label, ...rest);
    r.lastChannel[label] = ch;
    r.channels[label] ??= 0;
    ch.addEventListener("message", () => r.channels[label]++);
    return ch;
  };
}

window.T = {
  // rawWT subscribes to topic over the browser's own WebTransport, and to dgTopic with
  // "delivery":"datagram"; it resolves with both sub answers.
  async rawWT(name, topic, dgTopic) {
    const r = newRun(name, "WebTransport API", topic, dgTopic);
    r.transport = "webtransport";
    const info = await (await fetch(server + "/v1/info")).json();
    const { url, certHash } = info.webtransport;
    const wt = new WebTransport(url, { serverCertificateHashes: [{ algorithm: "sha-256", value: hexBytes(certHash) }] });
    await wt.ready;
    log(`${name}: WebTransport session to ${url} is ready`);
    wt.closed.then((i) => r.events.push(`closed ${i.closeCode} ${i.reason}`), (e) => r.events.push(`closed: ${e.message}`));
    const stream = await wt.createBidirectionalStream();
    const writer = stream.writable.getWriter();
    const enc = new TextEncoder();
    const send = (f) => writer.write(enc.encode(JSON.stringify(f) + "\n"));
    const answers = new Map();
    const answer = (id) => new Promise((res) => answers.set(id, res));
    readLines(stream.readable, (line) => {
      const f = JSON.parse(line);
      if (f.op === "ping") send({ op: "pong" });
      else if (f.op === "msg") record(r, f, false);
      else if (f.id && answers.has(f.id)) answers.get(f.id)(f);
      else r.events.push(line);
    }).catch((e) => r.events.push(`stream: ${e.message}`));
    (async () => {
      const reader = wt.datagrams.readable.getReader();
      const dec = new TextDecoder();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        record(r, JSON.parse(dec.decode(value)), true);
      }
    })().catch((e) => r.events.push(`datagrams: ${e.message}`));
    const ok = [answer(1), answer(2)];
    await send({ op: "sub", id: 1, topic });
    await send({ op: "sub", id: 2, topic: dgTopic, delivery: "datagram" });
    r.close = () => wt.close();
    r.send = (line) => writer.write(enc.encode(line + "\n"));
    return { answers: await Promise.all(ok), maxDatagramSize: wt.datagrams.maxDatagramSize };
  },

  // rawWS subscribes to topic over the browser's own WebSocket.
  async rawWS(name, topic) {
    const r = newRun(name, "WebSocket API", topic);
    r.transport = "websocket";
    const ws = new WebSocket(server.replace(/^http/, "ws") + "/ws");
    await new Promise((res, rej) => {
      ws.onopen = res;
      ws.onerror = () => rej(new Error("websocket failed"));
    });
    log(`${name}: WebSocket open`);
    r.close = () => ws.close(1000);
    return new Promise((res) => {
      ws.onclose = (e) => r.events.push(`closed ${e.code} ${e.reason}`);
      ws.onmessage = (e) => {
        for (const line of e.data.split("\n")) {
          if (!line) continue;
          const f = JSON.parse(line);
          if (f.op === "ping") ws.send('{"op":"pong"}');
          else if (f.op === "msg") record(r, f, false);
          else if (f.id === 1) res(f);
          else r.events.push(line);
        }
      };
      ws.send(JSON.stringify({ op: "sub", id: 1, topic }));
    });
  },

  // rawSSE subscribes to topic with the browser's own EventSource; it resolves with the
  // ready event.
  async rawSSE(name, topic) {
    const r = newRun(name, "EventSource API", topic);
    r.transport = "sse";
    const es = new EventSource(`${server}/v1/sse?topic=${encodeURIComponent(topic)}`);
    r.close = () => es.close();
    return new Promise((res, rej) => {
      es.addEventListener("ready", (e) => {
        r.ready = JSON.parse(e.data);
        log(`${name}: EventSource ready ${e.data}`);
        res(r.ready);
      });
      es.onmessage = (e) => {
        r.ids.push(e.lastEventId);
        record(r, JSON.parse(e.data), false);
      };
      es.onerror = () => {
        r.events.push(`error (readyState ${es.readyState})`);
        if (!r.ready) rej(new Error("EventSource failed before ready"));
      };
    });
  },

  // client connects topicast.js (from the server) and subscribes to opts.topic, and
  // to opts.dgTopic with "delivery":"datagram" if set.
  //
  // opts.noWebTransport hides WebTransport from the page, as a browser without it;
  // opts.tapChannels counts the messages of each data channel the page opens, by label,
  // in channels.
  async client(name, opts) {
    const { connect } = await import(server + "/topicast.js");
    const r = newRun(name, "topicast.js", opts.topic, opts.dgTopic);
    if (opts.noWebTransport) delete globalThis.WebTransport;
    if (opts.tapChannels) tapChannels(r);
    const client = await connect({
      url: opts.url || server,
      transports: opts.transports,
      minBackoff: 50,
      maxBackoff: 1000,
      onEvent: (e) => {
        log(`${name}: ${JSON.stringify(e)}`);
        if (e.type === "connected") {
          r.connects++;
          r.transport = e.transport;
        } else if (e.type === "disconnected") {
          r.disconnects.push(e.code);
        } else {
          r.events.push(e);
        }
        schedule();
      },
    });
    r.client = client;
    r.transport = client.transport;
    const sub = client.subscribe(opts.topic, (m) => {
      if (opts.delta) r.datas.push(JSON.stringify(m.data));
      record(r, m, false);
    }, { since: opts.since, delta: opts.delta ? "fossil" : undefined });
    r.subs[opts.topic] = sub;
    await sub.ready;
    if (opts.dgTopic) await client.subscribe(opts.dgTopic, (m) => record(r, m, true), { delivery: "datagram" }).ready;
    r.close = () => client.close();
    log(`${name}: connected over ${client.transport}, ${opts.topic} at ${JSON.stringify(sub.position)}`);
    return { transport: client.transport, position: sub.position };
  },

  // subscribe adds a subscription to topic to run name's client; its seqs go to
  // extra[topic].
  async subscribe(name, topic) {
    const r = runs.get(name);
    r.extra[topic] = [];
    const sub = r.client.subscribe(topic, (m) => {
      r.extra[topic].push(m.seq);
      schedule();
    });
    r.subs[topic] = sub;
    await sub.ready;
    return sub.position;
  },

  unsubscribe(name, topic) {
    return runs.get(name).subs[topic].unsubscribe();
  },

  // waitExtra resolves when run name has n messages of topic in extra, or after ms.
  async waitExtra(name, topic, n, ms) {
    const r = runs.get(name);
    const end = Date.now() + ms;
    while (r.extra[topic].length < n && Date.now() < end) await sleep(10);
    return summary(r);
  },

  // clientPublish publishes k messages one after the other with topicast.js.
  async clientPublish(name, topic, k) {
    const r = runs.get(name);
    const out = [];
    for (let i = 0; i < k; i++) {
      try {
        out.push(await r.client.publish(topic, { n: `client-${i}` }));
      } catch (e) {
        out.push({ error: e.message, code: e.code });
      }
    }
    return out;
  },

  // wait resolves when run name has n messages in key ("seqs", "dg"...), or after ms.
  async wait(name, key, n, ms) {
    const r = runs.get(name);
    const end = Date.now() + ms;
    while (r[key].length < n && Date.now() < end) await sleep(10);
    return summary(r);
  },

  // waitLast resolves when the last entry of run name's key reaches seq, or after ms.
  async waitLast(name, key, seq, ms) {
    const r = runs.get(name);
    const end = Date.now() + ms;
    while (!(r[key].length && r[key][r[key].length - 1] >= seq) && Date.now() < end) await sleep(10);
    return summary(r);
  },

  // waitReconnected resolves when run name has been disconnected n times and is
  // connected again, or after ms.
  async waitReconnected(name, n, ms) {
    const r = runs.get(name);
    const end = Date.now() + ms;
    while ((r.disconnects.length < n || r.connects < n + 1) && Date.now() < end) await sleep(10);
    return summary(r);
  },

  result(name) {
    return summary(runs.get(name));
  },

  idle: (ms) => sleep(ms),

  // freeze blocks the page's event loop for ms, from the next task on: no
  // frame is read and no ping answered meanwhile, as in a frozen tab.
  freeze(ms) {
    setTimeout(() => {
      log(`frozen for ${ms} ms`);
      const end = Date.now() + ms;
      while (Date.now() < end) {
        // busy
      }
    }, 0);
  },

  // closeChannel closes run name's last data channel labelled label (tapChannels): a
  // connection that ends without a close frame.
  closeChannel(name, label) {
    runs.get(name).lastChannel[label].close();
  },

  // send writes one line on run name's WebTransport stream.
  send(name, line) {
    return runs.get(name).send(line);
  },

  // waitClosed resolves once run name's session or socket has closed, or after ms.
  async waitClosed(name, ms) {
    const r = runs.get(name);
    const end = Date.now() + ms;
    while (!r.events.some((e) => typeof e === "string" && e.startsWith("closed")) && Date.now() < end) await sleep(10);
    return summary(r);
  },

  close(name) {
    runs.get(name).close();
  },

  // closeAll closes every run's connection (before the test leaves the page,
  // which the browser may otherwise keep alive in its back/forward cache).
  closeAll() {
    for (const r of runs.values()) r.close();
  },

  log,
};
log(`harness loaded from ${location.origin}`);
