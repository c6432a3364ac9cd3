// topicast.js: the browser client of topicast (docs/protocol.md).
// One ES module, no build step. The server serves it at /topicast.js.
//
//   import { connect } from "http://127.0.0.1:8080/topicast.js";
//   const client = await connect({ url: "http://127.0.0.1:8080", onEvent: (e) => console.log(e) });
//   const sub = client.subscribe("scores", (msg) => console.log(msg.seq, msg.data));
//   await sub.ready;                            // the server confirmed it
//   const { epoch, seq } = await client.publish("chat", { text: "hi" });
//   sub.unsubscribe();
//   client.close();
//
// Transports, tried in options.transports order (default all four, in this order; leave
// a name out of options.transports to exclude it):
//   "webtransport"  when /v1/info offers it and the browser has WebTransport; a
//                   development certificate is pinned with serverCertificateHashes.
//   "webrtc"        when /v1/info offers it (webrtc.url, webrtc.iceServers) and the
//                   browser has RTCPeerConnection: data channels "topicast" (reliable,
//                   ordered; frames as over WebSocket) and "topicast-datagram"
//                   (unordered, no retransmission) for datagram subscriptions, set up
//                   with one POST of the offer (every ICE candidate in it, gathering
//                   bounded to 5 s) to the server, which answers 201 with its SDP. The
//                   way to datagrams where WebTransport is missing or fails.
//   "websocket"     GET /ws.
//   "sse"           EventSource on GET /v1/sse with every subscribed topic. SSE only
//                   receives: publish() rejects with code "unavailable" over it.
// The client remembers which transport worked and tries it first again. Chromium does
// not see the code of a WebTransport session the server closes (webtransport-go v0.13.0
// resets the session's CONNECT stream): such closes read as 1006, and a session that
// ends before its first frame makes the client try the next transport. Over WebRTC the
// server closes with an error frame (no id, no topic) whose code names the close code
// ("going_away" 1001, "slow_consumer" 4008...) and then closes the peer connection: the
// client reports and handles that code as a WebSocket close with it; a peer connection
// that fails or closes without one is 1006. A 401 answer to the offer reads as 4001.
//
// subscribe(topic, onMessage, {since: {epoch, seq}, delivery: "datagram", mode: "latest"}):
// since recovers what came after a position kept from sub.position; "datagram" asks
// WebTransport or WebRTC for lossy, latest-wins delivery (seq never goes backwards;
// WebSocket and SSE deliver every message); mode "latest"
// makes the server keep only the newest undelivered message when the client falls
// behind (gaps without "gap" events; over SSE only when every topic of the stream asks);
// {delta: "fossil"} asks for messages as fossil deltas of the one before, which the client
// applies before calling onMessage (WebSocket and WebTransport; SSE sends them whole).
//
// Presence (protocol 1.1, where the server's namespace enables it, else bad_request):
// sub.enter(info) makes this connection a member of the topic with info (any JSON value,
// at most 1 KiB, or none) until sub.leave() or unsubscribe(); the client enters again with
// the same info after every reconnection. {presence: true} also asks for the topic's
// "join", "update" and "leave" events, given to onEvent. sub.presence() resolves to
// {count, members: [{client, conn, info}]}. Over SSE, which only receives, enter() rejects
// with "unavailable" and presence() asks GET /v1/presence; no presence events come.
//
// Delivery: each subscription's handler gets every message of its topic once, in seq
// order, across reconnections: the client reconnects with exponential backoff and full
// jitter, resubscribes with since = the last (epoch, seq) delivered, and drops repeats.
// When continuity is lost all the same, onEvent gets {type: "reset", recovered: false}
// (the history did not reach back far enough) or {type: "reset", reason: "new epoch"}
// (the topic restarted); deliveries go on from there, resync the topic on your own.
//
// Events given to options.onEvent (always with a `type`):
//   connected {transport}         disconnected {transport, code, reason}
//   reset {topic, epoch, seq, reason, recovered}   gap {topic, epoch, seq}
//   subscription_ended {topic, code, message}      error {code, message, topic?}
//   join {topic, client, conn, info?}   update {topic, client, conn, info?}
//   leave {topic, client, conn}: presence events of {presence: true} subscriptions
//   closed {code, reason}: the client stopped for good (1009, 4009, or 4001 without
//   tokenFunc); calls reject from then on.
// An error event with a topic says that the server refused to let the client enter the
// topic again after a reconnection (it is no longer a member there).
//
// Peer-to-peer WebRTC between two browsers, signalled through topicast (the server never
// looks into these messages): both pages use the same topic, which only the two of them
// may use (their tokens' subscribe and publish patterns), over a transport that
// publishes (not SSE).
//   const link = client.peerConnection("p2p.room1");        // perfect negotiation
//   const chat = link.pc.createDataChannel("chat", { negotiated: true, id: 0 });
//   chat.onmessage = (e) => console.log(e.data);             // straight from the peer
// peerConnection(topic, {config, polite}) gives {pc, signal, peer, close()}: config is
// the RTCPeerConnection's (iceServers: STUN/TURN for peers behind NAT; none by default),
// polite defaults to a comparison of the two ids (the smaller is polite), peer resolves
// to the other side's id once it showed up. Underneath, signal(topic, {onSignal, onPeer,
// onBye}) subscribes to the topic and announces itself: it gives {id, peer, ready,
// send(data, to?), close()}. Every message it publishes is {from: id, ...}: {hello: true,
// reply?: true} announces a peer (each hello that is not a reply is answered, so two
// peers find each other whichever subscribed first), {data, to?} carries a signal (an
// offer, an answer, a candidate: any JSON value) to onSignal(data, from), {bye: true}
// says the peer left (onBye(from)). A peer ignores its own messages and those sent to
// another; send() addresses the first peer that showed up unless told otherwise.

const DEFAULTS = {
  transports: ["webtransport", "webrtc", "websocket", "sse"],
  minBackoff: 100, // ms: the ceiling of the first retry's random wait
  maxBackoff: 10000, // ms: the largest ceiling
  connectTimeout: 10000, // ms: one connection attempt
  pingAfter: 25000, // ms without traffic before the client pings
  silenceTimeout: 60000, // ms without a frame before the client gives up a connection
};

const TOPIC = /^[A-Za-z0-9_\-.:/]{1,200}$/;

// Codes after which reconnecting cannot help (4001 too, unless tokenFunc can get a new token).
const TERMINAL = new Set([1009, 4009]);

// Error codes worth asking again for (a resubscription, an enter after a reconnection).
const RETRIABLE = ["unavailable", "rate_limited", "internal"];

// MAX_INFO is the largest info of an enter, in UTF-8 bytes of its JSON.
const MAX_INFO = 1024;

// CLOSE_CODES maps the code names of the error frames that close a WebRTC session (no
// id, no topic) to the WebSocket close codes they stand for; closeCode also reads
// "code_N", the server's name of a code N outside this table.
const CLOSE_CODES = {
  normal: 1000,
  going_away: 1001,
  too_large: 1009,
  unauthorized: 4001,
  slow_consumer: 4008,
  protocol_error: 4009,
  rate_limited: 4029,
};

function closeCode(name) {
  if (typeof name !== "string") return 0;
  if (Object.hasOwn(CLOSE_CODES, name)) return CLOSE_CODES[name];
  const m = /^code_([1-9][0-9]{3})$/.exec(name);
  return m ? Number(m[1]) : 0;
}

// RTC_GATHER_TIMEOUT bounds the wait for ICE gathering (ms): the offer then goes with
// the candidates gathered so far.
const RTC_GATHER_TIMEOUT = 5000;

// RTC_CLOSE_WAIT bounds the wait (ms) for the peer connection to close after the server
// sent its close frame.
const RTC_CLOSE_WAIT = 1000;

/** TopicastError is what calls reject with; code is a protocol error code or "closed". */
export class TopicastError extends Error {
  constructor(code, message) {
    super(message);
    this.name = "TopicastError";
    this.code = code;
  }
}

/**
 * connect opens a client and resolves once one transport is up. It rejects when every
 * transport failed once.
 * @param {object} [options] url (http(s) base, default location.origin), token or
 *   tokenFunc (async () => jwt, called for each connection), transports, onEvent,
 *   minBackoff, maxBackoff, connectTimeout, pingAfter, silenceTimeout (ms).
 */
export async function connect(options = {}) {
  const client = new Client(options);
  await client._start();
  return client;
}

class Client {
  constructor(options) {
    const base = String(options.url || globalThis.location?.origin || "").replace(/\/+$/, "");
    if (!/^https?:\/\//.test(base)) throw new TypeError("topicast: url must be an http(s) URL");
    this._base = base;
    this._o = { ...DEFAULTS };
    for (const [k, v] of Object.entries(options)) if (v !== undefined && v !== null) this._o[k] = v;
    this._transports = this._o.transports.filter((t) => t in OPENERS);
    if (!this._transports.length) throw new TypeError("topicast: no known transport in options.transports");
    this._onEvent = options.onEvent || null;
    this._subs = new Map(); // topic -> Subscription
    this._calls = new Map(); // id -> {kind, conn, sub?, resolve?, reject?}
    this._waiting = []; // publishes waiting for a connection: {send, reject}
    this._nextId = 0;
    this._conn = null;
    this._pref = 0; // index of the transport that worked last
    this._closed = false;
    this._err = null;
    this._wake = null; // ends the backoff sleep early (close)
    this._sseCursor = ""; // the last SSE event id: resumes every topic of an SSE stream
    this._timer = null;
  }

  /** The current transport ("webtransport", "webrtc", "websocket", "sse"), or null while disconnected. */
  get transport() {
    return this._conn ? this._conn.name : null;
  }

  /**
   * subscribe calls onMessage({topic, epoch, seq, ts, data}) for every message of topic
   * from now (or after options.since = {epoch, seq}), once and in order. It returns a
   * Subscription at once; its `ready` promise resolves when the server confirmed it
   * and rejects if the server refused it. options.delivery "datagram" asks WebTransport
   * or WebRTC for lossy, latest-wins delivery (other transports deliver every message).
   * options.mode "latest" asks for a latest-value subscription: a client that falls
   * behind gets the newest message, never a slow-consumer close for the topic's volume.
   */
  subscribe(topic, onMessage, options = {}) {
    if (!TOPIC.test(topic)) throw new TypeError(`topicast: bad topic ${JSON.stringify(topic)}`);
    if (typeof onMessage !== "function") throw new TypeError("topicast: subscribe needs a handler");
    if (this._err) throw this._err;
    if (this._subs.has(topic)) throw new TypeError(`topicast: already subscribed to ${topic}`);
    const s = new Subscription(this, topic, onMessage, options);
    this._subs.set(topic, s);
    if (this._conn) this._sendSub(this._conn, s);
    return s;
  }

  /** publish sends data (any JSON value) to topic; it resolves to {epoch, seq}. */
  publish(topic, data) {
    return new Promise((resolve, reject) => {
      if (this._err) return reject(this._err);
      if (!TOPIC.test(topic)) return reject(new TopicastError("bad_request", `topicast: bad topic ${JSON.stringify(topic)}`));
      if (data === undefined) return reject(new TopicastError("bad_request", "topicast: publish needs data"));
      const send = (cn) => {
        if (!cn.canPublish) {
          reject(new TopicastError("unavailable",
            `topicast: cannot publish over ${cn.name}, which only receives; list "webtransport", "webrtc" or "websocket" in transports`));
          return;
        }
        const id = ++this._nextId;
        this._calls.set(id, { kind: "pub", conn: cn, resolve: (f) => resolve({ epoch: f.epoch, seq: f.seq }), reject });
        cn.send({ op: "pub", id, topic, data });
      };
      if (this._conn) send(this._conn);
      else this._waiting.push({ send, reject }); // sent on the next connection
    });
  }

  /**
   * signal opens a signalling channel for peer-to-peer WebRTC on topic, which only the
   * two peers may use: offers, answers and ICE candidates go as ordinary messages, each
   * {from: id, ...}. options.onSignal(data, from) gets the other peer's signals,
   * options.onPeer(from) each peer that shows up, options.onBye(from) each that leaves;
   * options.id replaces the random id. It returns a Signal at once; its ready promise
   * resolves once it is subscribed and has announced itself.
   */
  signal(topic, options = {}) {
    return new Signal(this, topic, options);
  }

  /**
   * peerConnection makes an RTCPeerConnection to the other peer on topic, negotiated
   * through signal(topic) with the perfect-negotiation pattern: add data channels or
   * tracks to its pc whenever, either side. options.config is the RTCPeerConnection's
   * configuration, options.polite (default: the peer with the smaller id is polite)
   * which side gives way when both offer at once, options.id as for signal.
   */
  peerConnection(topic, options = {}) {
    return new PeerLink(this, topic, options);
  }

  /** close closes the connection and stops the client; pending calls reject. */
  close() {
    if (this._closed) return;
    this._terminate(new TopicastError("closed", "topicast: client closed"));
    const cn = this._conn;
    this._conn = null;
    if (cn) cn.close(1000, "");
  }

  // --- connection management ---

  _emit(ev) {
    if (!this._onEvent || this._closed && ev.type !== "closed") return;
    try {
      this._onEvent(ev);
    } catch (e) {
      report(e);
    }
  }

  _terminate(err) {
    if (this._closed) return;
    this._closed = true;
    this._err = err;
    clearInterval(this._timer);
    if (this._wake) this._wake();
    for (const [id, cl] of this._calls) {
      this._calls.delete(id);
      if (cl.reject) cl.reject(err);
    }
    for (const w of this._waiting.splice(0)) w.reject(err);
    for (const s of this._subs.values()) {
      s._settle(err);
      this._settleOp(s, err);
    }
  }

  async _start() {
    const errors = [];
    for (let i = 0; i < this._transports.length; i++) {
      try {
        const cn = await this._open(this._transports[i]);
        if (this._closed) {
          cn.close(1000, "");
          break;
        }
        this._pref = i;
        this._attach(cn);
        this._timer = setInterval(() => this._heartbeat(), this._tick());
        this._run(cn).catch(report);
        return;
      } catch (e) {
        errors.push(`${this._transports[i]}: ${e.message}`);
      }
    }
    const err = new TopicastError("unavailable", `topicast: cannot connect to ${this._base} (${errors.join("; ")})`);
    this._terminate(err);
    throw err;
  }

  async _open(name) {
    let token = this._o.token || "";
    if (this._o.tokenFunc) token = await this._o.tokenFunc();
    return OPENERS[name](this, token);
  }

  // _run serves connections until the client stops: after each one ends it reconnects
  // with backoff, trying every transport once per round, the last good one first.
  async _run(cn) {
    let attempt = 0;
    while (!this._closed) {
      const info = await cn.closed;
      this._detach(cn, info);
      if (this._closed) return;
      const terminal = TERMINAL.has(info.code) || (info.code === 4001 && !this._o.tokenFunc);
      if (terminal) {
        const err = new TopicastError(info.code === 4001 ? "unauthorized" : "closed",
          `topicast: server closed with ${info.code}${info.reason ? ": " + info.reason : ""}`);
        err.closeCode = info.code;
        this._terminate(err);
        this._emit({ type: "closed", code: info.code, reason: info.reason });
        return;
      }
      this._emit({ type: "disconnected", transport: cn.name, code: info.code, reason: info.reason });
      if (cn.gotFrame) attempt = 0; // that connection worked: start the backoff again
      else if (cn.name === "webtransport" && (info.code === 0 || info.code === 1006)) {
        // Browsers do not see the code of a WebTransport session that the server
        // closed right away (4001, say): ask the next transport, which tells.
        this._pref = (this._pref + 1) % this._transports.length;
      }
      let next = null;
      while (!next) {
        await this._sleep(backoff(attempt++, this._o.minBackoff, this._o.maxBackoff));
        for (let i = 0; i < this._transports.length && !next; i++) {
          if (this._closed) return;
          const idx = (this._pref + i) % this._transports.length;
          try {
            next = await this._open(this._transports[idx]);
            this._pref = idx;
          } catch {
            // try the next transport, then back off
          }
        }
        if (this._closed) {
          if (next) next.close(1000, "");
          return;
        }
      }
      cn = next;
      this._attach(cn);
    }
  }

  _sleep(ms) {
    return new Promise((resolve) => {
      const t = setTimeout(done, ms);
      function done() {
        clearTimeout(t);
        resolve();
      }
      this._wake = done;
    });
  }

  _attach(cn) {
    this._conn = cn;
    cn.onFrame = (f, datagram, line) => this._frame(cn, f, datagram, line);
    this._emit({ type: "connected", transport: cn.name });
    for (const s of this._subs.values()) {
      this._sendSub(cn, s);
      if (s._entered) this._sendEnter(cn, s); // the last connection's end left the topic
    }
    for (const w of this._waiting.splice(0)) w.send(cn);
  }

  _detach(cn, info) {
    if (this._conn === cn) this._conn = null;
    const lost = new TopicastError("unavailable", `topicast: connection lost (${info.code}${info.reason ? " " + info.reason : ""}) before the answer`);
    for (const [id, cl] of this._calls) {
      if (cl.conn !== cn) continue;
      this._calls.delete(id);
      if (cl.kind === "leave") {
        if (cl.gen === cl.sub._gen) this._settleOp(cl.sub, null); // the connection's end left
      } else if (cl.kind === "enter") {
        // the next connection enters again, and its answer goes to the enter() waiting
      } else if (cl.kind === "presence") {
        this._waiting.push({ send: cl.resend, reject: cl.reject }); // asking again is harmless
      } else if (cl.resolve && cl.kind === "unsub") cl.resolve(); // nothing left to undo
      else if (cl.reject) cl.reject(lost);
    }
    for (const s of this._subs.values()) {
      if (s._sentOn === cn) s._sentOn = null;
      if (s._activeOn === cn) s._activeOn = null;
      if (s._enterOn === cn) s._enterOn = null;
    }
  }

  _tick() {
    const d = Math.min(...[this._o.pingAfter, this._o.silenceTimeout].filter((x) => x > 0).map((x) => x / 4), 1000);
    return Math.max(d, 5);
  }

  _heartbeat() {
    const cn = this._conn;
    if (!cn || !cn.heartbeats) return;
    const now = Date.now();
    if (this._o.silenceTimeout > 0 && now - cn.lastRead >= this._o.silenceTimeout) {
      cn.abort("server silent");
      return;
    }
    const quiet = now - cn.lastRead >= this._o.pingAfter || now - cn.lastWrite >= this._o.pingAfter;
    if (this._o.pingAfter > 0 && quiet && now - cn.lastPing >= this._o.pingAfter / 2) {
      cn.lastPing = now;
      cn.send({ op: "ping" });
    }
  }

  // --- frames ---

  _sendSub(cn, s) {
    const id = ++this._nextId;
    this._calls.set(id, { kind: "sub", conn: cn, sub: s });
    s._sentOn = cn;
    const f = { op: "sub", id, topic: s.topic };
    if (s._presence) f.presence = true;
    if (s._latest) f.mode = "latest";
    if (s._delta) f.delta = "fossil";
    if (s._datagram) {
      if (cn.datagrams) f.delivery = "datagram"; // lossy: no recovery
    } else if (s._pos) {
      f.since = { epoch: s._pos.epoch, seq: s._pos.seq };
    }
    cn.send(f);
  }

  _frame(cn, f, datagram, line) {
    cn.gotFrame = true;
    cn.lastRead = Date.now();
    switch (f.op) {
      case "ping":
        cn.send({ op: "pong" });
        break;
      case "msg":
        this._onMsg(cn, f, datagram, line);
        break;
      case "ok":
        this._onReply(cn, f, null);
        break;
      case "error": {
        const err = new TopicastError(f.code, f.message || f.code);
        if (f.id) this._onReply(cn, f, err);
        else if (f.topic) this._onSubEnded(cn, f, err);
        else this._emit({ type: "error", code: f.code, message: f.message });
        break;
      }
      case "reset":
        this._onReset(cn, f);
        break;
      case "join":
      case "update":
      case "leave":
        this._onPresenceEvent(cn, f);
        break;
    }
  }

  // _onMsg delivers a message unless it repeats one: a seq at or below the last one
  // delivered in the same epoch (recovery may overlap what was delivered).
  //
  // _applyDelta rebuilds the data of a msg that came as a fossil delta (f.delta) from
  // the bytes of the message before it, and keeps this message's data bytes as the base of
  // the next: the bytes as the server sent them (line's tail), never a re-encoding. A delta
  // that does not apply drops the connection, whose successor recovers the message whole.
  _applyDelta(cn, s, f, line) {
    try {
      if (f.delta) {
        if (!s._base) throw new Error("a delta came without the message it applies to");
        s._base = applyDelta(s._base, UTF8.encode(f.data));
        f.data = JSON.parse(UTF8D.decode(s._base));
        delete f.delta;
      } else {
        // The data is the frame's tail: ...,"data":<data>}
        const i = line ? line.indexOf(',"data":') : -1;
        s._base = i < 0 ? null : UTF8.encode(line.slice(i + 8, line.lastIndexOf("}")));
      }
      return true;
    } catch (e) {
      this._emit({ type: "error", code: "bad_delta", message: `${f.topic} seq ${f.seq}: ${e.message}` });
      s._base = null;
      s._activeOn = null; // nothing more from cn for s: it resubscribes on the next connection
      cn.abort("bad delta");
      return false;
    }
  }

  _onMsg(cn, f, datagram, line) {
    const s = this._subs.get(f.topic);
    if (!s || s._activeOn !== cn) return; // not subscribed (any more, or yet) on cn
    const p = s._pos;
    if (p) {
      if (f.epoch !== p.epoch) {
        if (!s._datagram) this._emit({ type: "reset", topic: s.topic, epoch: f.epoch, seq: f.seq - 1, reason: "new epoch", recovered: false });
      } else if (f.seq <= p.seq) {
        return;
      } else if (f.seq !== p.seq + 1 && !s._datagram && !s._latest && !datagram) {
        this._emit({ type: "gap", topic: s.topic, epoch: p.epoch, seq: p.seq });
      }
    }
    if ((s._delta || f.delta) && !this._applyDelta(cn, s, f, line)) return;
    s._pos = { epoch: f.epoch, seq: f.seq };
    try {
      s._handler({ topic: f.topic, epoch: f.epoch, seq: f.seq, ts: f.ts, data: f.data });
    } catch (e) {
      report(e);
    }
  }

  _onReset(cn, f) {
    const s = this._subs.get(f.topic);
    if (!s || s._activeOn !== cn) return;
    s._pos = { epoch: f.epoch, seq: f.seq };
    this._emit({ type: "reset", topic: s.topic, epoch: f.epoch, seq: f.seq, reason: f.reason || "new epoch", recovered: false });
  }

  _onReply(cn, f, err) {
    const cl = this._calls.get(f.id);
    if (!cl || cl.conn !== cn) return; // abandoned
    this._calls.delete(f.id);
    if (cl.kind === "sub") this._onSubReply(cn, cl.sub, f, err);
    else if (cl.kind === "enter" || cl.kind === "leave") this._onPresenceReply(cn, cl, err);
    else if (err) cl.reject(err);
    else cl.resolve(f);
  }

  _onSubReply(cn, s, f, err) {
    if (this._subs.get(s.topic) !== s) return; // unsubscribed meanwhile
    if (err) {
      if (!s._confirmed) {
        this._subs.delete(s.topic); // the first answer goes to ready
        s._settle(err);
        this._endMembership(s, err); // an enter() made before ready
      } else if (RETRIABLE.includes(err.code)) {
        s._sentOn = null;
        setTimeout(() => {
          if (this._conn === cn && this._subs.get(s.topic) === s && !s._sentOn) this._sendSub(cn, s);
        }, backoff(++s._retries, this._o.minBackoff, this._o.maxBackoff));
      } else {
        this._subs.delete(s.topic);
        this._endMembership(s, err);
        this._emit({ type: "subscription_ended", topic: s.topic, code: err.code, message: err.message });
      }
      return;
    }
    s._activeOn = cn;
    s._retries = 0;
    const p = s._pos;
    if (s._datagram) {
      if (!p || p.epoch !== f.epoch) s._pos = { epoch: f.epoch, seq: f.seq };
    } else if (!p) {
      s._pos = { epoch: f.epoch, seq: f.seq };
    } else if (!(f.recovered === true && f.epoch === p.epoch)) {
      // The missed messages are gone: go on live after the head.
      s._pos = { epoch: f.epoch, seq: f.seq };
      this._emit({ type: "reset", topic: s.topic, epoch: f.epoch, seq: f.seq, reason: "not recovered", recovered: false });
    } // recovered: the missed messages follow, _onMsg drops repeats
    s._settle(null);
  }

  _onSubEnded(cn, f, err) {
    const s = this._subs.get(f.topic);
    if (!s || (s._activeOn !== cn && s._sentOn !== cn)) return;
    this._subs.delete(f.topic);
    this._endMembership(s, err);
    if (!s._confirmed) s._settle(err);
    else this._emit({ type: "subscription_ended", topic: s.topic, code: err.code, message: err.message });
  }

  _unsubscribe(s) {
    if (this._subs.get(s.topic) !== s) return Promise.resolve();
    this._subs.delete(s.topic);
    const ended = new TopicastError("closed", "topicast: unsubscribed");
    s._settle(ended);
    this._endMembership(s, ended); // its leave goes before the unsub
    const cn = this._conn;
    if (!cn || s._sentOn !== cn) return Promise.resolve(); // nothing to undo
    return new Promise((resolve, reject) => {
      const id = ++this._nextId;
      this._calls.set(id, {
        kind: "unsub", conn: cn, resolve: () => resolve(),
        // bad_request means "not subscribed": the server had ended it already
        reject: (e) => (e.code === "bad_request" || e.code === "closed" ? resolve() : reject(e)),
      });
      cn.send({ op: "unsub", id, topic: s.topic });
    });
  }

  // --- presence ---
  //
  // A subscription keeps its membership as the application wants it: _entered and
  // _info (sent again on every connection), _enterOn (the connection the last enter
  // went on), _gen (counts enter(), leave() and the membership's end: only the answer
  // to the last one counts) and _op, the last call's {resolve, reject} while it waits.

  _enter(s, info) {
    return new Promise((resolve, reject) => {
      if (this._err) return reject(this._err);
      if (this._subs.get(s.topic) !== s) return reject(new TopicastError("closed", `topicast: not subscribed to ${s.topic}`));
      let value;
      if (info !== undefined && info !== null) {
        let raw;
        try {
          raw = JSON.stringify(info);
        } catch (e) {
          return reject(new TopicastError("bad_request", `topicast: info cannot be encoded as JSON: ${e.message}`));
        }
        if (raw === undefined) return reject(new TopicastError("bad_request", "topicast: info is not a JSON value"));
        const size = UTF8.encode(raw).length;
        if (size > MAX_INFO) return reject(new TopicastError("too_large", `topicast: info is ${size} bytes, over the limit of ${MAX_INFO}`));
        value = JSON.parse(raw); // a copy: later changes of info do not reach the server
      }
      const cn = this._conn;
      if (cn && !cn.canPublish) {
        return reject(new TopicastError("unavailable",
          `topicast: cannot enter over ${cn.name}, which only receives; list "webtransport", "webrtc" or "websocket" in transports`));
      }
      this._settleOp(s, null); // the new call replaces the one waiting
      s._gen++;
      s._op = { resolve, reject, prevEntered: s._entered, prevInfo: s._info };
      s._entered = true;
      s._info = value;
      if (cn) this._sendEnter(cn, s); // else the next connection sends it
    });
  }

  _leave(s) {
    return new Promise((resolve, reject) => {
      if (this._err) return reject(this._err);
      if (this._subs.get(s.topic) !== s) return resolve(); // unsubscribe() left already
      this._settleOp(s, null);
      s._gen++;
      s._entered = false;
      s._info = undefined;
      const cn = this._conn;
      const on = s._enterOn;
      s._enterOn = null;
      if (!cn || on !== cn) return resolve(); // not a member on this connection
      // bad_request means "not a member": the enter before was refused
      s._op = { resolve, reject: (e) => (e.code === "bad_request" ? resolve() : reject(e)) };
      this._sendLeave(cn, s);
    });
  }

  _presence(topic) {
    return new Promise((resolve, reject) => {
      if (this._err) return reject(this._err);
      const answer = (f) => resolve({ count: f.count, members: f.members || [] });
      const send = (cn) => {
        if (!cn.canPublish) {
          this._fetchPresence(topic, cn._token).then(answer, reject);
          return;
        }
        const id = ++this._nextId;
        this._calls.set(id, { kind: "presence", conn: cn, resend: send, resolve: answer, reject });
        cn.send({ op: "presence", id, topic });
      };
      if (this._conn) send(this._conn);
      else this._waiting.push({ send, reject }); // sent on the next connection
    });
  }

  // _fetchPresence asks GET /v1/presence, for connections that only receive (SSE).
  async _fetchPresence(topic, token) {
    const q = new URLSearchParams({ topic });
    if (token) q.set("token", token);
    const r = await fetch(`${this._base}/v1/presence?${q}`);
    const body = await r.json().catch(() => null);
    if (!r.ok || !body) {
      const e = body && body.error;
      throw new TopicastError(e ? e.code : "unavailable", e ? e.message : `topicast: GET /v1/presence: ${r.status}`);
    }
    return body;
  }

  _sendEnter(cn, s) {
    if (!cn.canPublish) {
      const err = new TopicastError("unavailable", `topicast: cannot enter ${s.topic} over ${cn.name}, which only receives`);
      if (s._op) {
        this._refuseEnter(cn, s, err);
      } else {
        // still a member to the application: the next WebSocket or WebTransport connection enters
        this._emit({ type: "error", topic: s.topic, code: err.code, message: err.message });
      }
      return;
    }
    const id = ++this._nextId;
    this._calls.set(id, { kind: "enter", conn: cn, sub: s, gen: s._gen });
    s._enterOn = cn;
    const f = { op: "enter", id, topic: s.topic };
    if (s._info !== undefined) f.info = s._info;
    cn.send(f);
  }

  _sendLeave(cn, s) {
    const id = ++this._nextId;
    this._calls.set(id, { kind: "leave", conn: cn, sub: s, gen: s._gen });
    cn.send({ op: "leave", id, topic: s.topic });
  }

  _settleOp(s, err) {
    const op = s._op;
    if (!op) return;
    s._op = null;
    if (err) op.reject(err);
    else op.resolve();
  }

  // _refuseEnter gives a refusal to the enter() waiting, and leaves the membership as
  // it was before that call.
  _refuseEnter(cn, s, err) {
    s._entered = s._op.prevEntered;
    s._info = s._op.prevInfo;
    // No membership on this connection when the refused enter was its first (after a
    // reconnection): the previous one is entered again, as after a reconnection.
    if (s._enterOn === cn && (!s._entered || s._memberOn !== cn)) s._enterOn = null;
    this._settleOp(s, err);
    if (s._entered && !s._enterOn) {
      setTimeout(() => {
        if (this._conn === cn && this._subs.get(s.topic) === s && s._entered && !s._enterOn) this._sendEnter(cn, s);
      }, backoff(++s._enterRetries, this._o.minBackoff, this._o.maxBackoff));
    }
  }

  _onPresenceReply(cn, cl, err) {
    const s = cl.sub;
    if (cl.gen !== s._gen) return; // an enter() or leave() came since: its answer counts
    if (!err) {
      if (cl.kind === "enter") {
        s._enterRetries = 0;
        s._memberOn = cn; // the server holds the membership on this connection
      }
      this._settleOp(s, null);
    } else if (cl.kind === "leave") {
      this._settleOp(s, err);
    } else if (s._op) {
      this._refuseEnter(cn, s, err);
    } else if (!s._entered || this._subs.get(s.topic) !== s) {
      // not a member any more: nothing to enter again
    } else if (RETRIABLE.includes(err.code)) {
      // the client's own enter after a reconnection: try again later
      s._enterOn = null;
      setTimeout(() => {
        if (this._conn === cn && this._subs.get(s.topic) === s && s._entered && !s._enterOn) this._sendEnter(cn, s);
      }, backoff(++s._enterRetries, this._o.minBackoff, this._o.maxBackoff));
    } else {
      s._entered = false;
      s._info = undefined;
      s._enterOn = null;
      this._emit({ type: "error", topic: s.topic, code: err.code, message: err.message });
    }
  }

  // _endMembership forgets s's membership as s ends, leaving on the server when it has
  // it on this connection; an enter() waiting rejects with err.
  _endMembership(s, err) {
    this._settleOp(s, err);
    s._gen++;
    const on = s._enterOn;
    s._entered = false;
    s._info = undefined;
    s._enterOn = null;
    if (this._conn && on === this._conn) this._sendLeave(this._conn, s); // its answer changes nothing
  }

  _onPresenceEvent(cn, f) {
    const s = this._subs.get(f.topic);
    if (!s || !s._presence || s._activeOn !== cn) return; // not asked for (any more, or yet)
    const ev = { type: f.op, topic: f.topic, client: f.client, conn: f.conn };
    if (f.op !== "leave" && f.info !== undefined) ev.info = f.info;
    this._emit(ev);
  }
}

/** Subscription is one topic's subscription; see Client.subscribe. */
class Subscription {
  constructor(client, topic, handler, options) {
    this.topic = topic;
    this._c = client;
    this._handler = handler;
    this._datagram = options.delivery === "datagram";
    this._latest = options.mode === "latest";
    this._delta = options.delta === "fossil" && !this._latest && !this._datagram;
    this._presence = options.presence === true;
    this._entered = false;
    this._info = undefined;
    this._enterOn = null;
    this._memberOn = null;
    this._gen = 0;
    this._op = null;
    this._enterRetries = 0;
    this._base = null; // the data bytes of the last message, which the next delta applies to
    const since = options.since;
    this._pos = since ? { epoch: String(since.epoch), seq: Number(since.seq) } : null;
    this._sentOn = null;
    this._activeOn = null;
    this._confirmed = false;
    this._retries = 0;
    /** ready resolves to the subscription once the server confirmed it. */
    this.ready = new Promise((resolve, reject) => {
      this._resolve = resolve;
      this._reject = reject;
    });
    this.ready.catch(() => {}); // a refusal also ends the subscription; awaiting ready is optional
  }

  /** position is {epoch, seq} of the last message delivered (or the head at subscription). */
  get position() {
    return this._pos ? { ...this._pos } : null;
  }

  /** unsubscribe ends the subscription, and its membership; the handler is not called again. */
  unsubscribe() {
    return this._c._unsubscribe(this);
  }

  /**
   * enter makes this connection a presence member of the topic with info (a JSON value of
   * at most 1 KiB, or nothing), or changes its info; the client enters again with it after
   * every reconnection. It resolves once the server accepted it (while disconnected, on
   * the next connection) and rejects with its refusal, which leaves the membership as it was.
   */
  enter(info) {
    return this._c._enter(this, info);
  }

  /** leave ends the membership that enter started. */
  leave() {
    return this._c._leave(this);
  }

  /** presence resolves to {count, members: [{client, conn, info}]}: who is in the topic. */
  presence() {
    return this._c._presence(this.topic);
  }

  _settle(err) {
    if (this._confirmed) return;
    this._confirmed = true;
    if (err) this._reject(err);
    else this._resolve(this);
  }
}

// --- peer-to-peer signalling ---

/**
 * Signal carries the signalling of a peer-to-peer session over topic; see Client.signal.
 * Its callbacks may be set as properties (onSignal, onPeer, onBye) after it is made.
 */
class Signal {
  constructor(client, topic, options) {
    this.topic = topic;
    /** id is this peer's id, the `from` of what it publishes. */
    this.id = String(options.id || randomId());
    /** peer is the id of the first other peer that showed up, or null. */
    this.peer = null;
    this.onSignal = options.onSignal || null;
    this.onPeer = options.onPeer || null;
    this.onBye = options.onBye || null;
    this._c = client;
    this._peers = new Set();
    this._closed = false;
    this._sub = client.subscribe(topic, (m) => this._onMessage(m.data));
    /** ready resolves to the Signal once it is subscribed and has announced itself. */
    this.ready = this._sub.ready.then(() => this._publish({ hello: true })).then(() => this);
    this.ready.catch(() => {}); // awaiting ready is optional
  }

  /** send publishes data (a JSON value) to the peer `to` (default: this.peer, or all). */
  send(data, to) {
    if (this._closed) return Promise.reject(new TopicastError("closed", "topicast: signal closed"));
    if (data === undefined) return Promise.reject(new TopicastError("bad_request", "topicast: send needs data"));
    const f = { data };
    const dest = to ?? this.peer;
    if (dest) f.to = dest;
    return this._publish(f);
  }

  /** close says goodbye to the peers and unsubscribes. */
  close() {
    if (this._closed) return Promise.resolve();
    const bye = this._publish({ bye: true }).catch(() => {}); // the peer may have gone first
    this._closed = true;
    return bye.then(() => this._sub.unsubscribe());
  }

  _publish(f) {
    return this._c.publish(this.topic, { from: this.id, ...f });
  }

  _onMessage(d) {
    if (this._closed || !d || typeof d !== "object" || typeof d.from !== "string" || d.from === this.id) return;
    if (d.to !== undefined && d.to !== this.id) return; // for another peer
    if (d.bye) {
      if (!this._peers.delete(d.from)) return;
      if (this.peer === d.from) this.peer = null;
      this._call(this.onBye, d.from);
      return;
    }
    this._met(d.from);
    if (d.hello) {
      // Answer: the peer may have subscribed after this one's hello went by.
      if (!d.reply) this._publish({ hello: true, reply: true, to: d.from }).catch(() => {});
      return;
    }
    if ("data" in d) this._call(this.onSignal, d.data, d.from);
  }

  // _met records a peer the first time it shows up.
  _met(from) {
    if (this._peers.has(from)) return;
    this._peers.add(from);
    if (!this.peer) this.peer = from;
    this._call(this.onPeer, from);
  }

  _call(fn, ...args) {
    if (!fn) return;
    try {
      fn(...args);
    } catch (e) {
      report(e);
    }
  }
}

/**
 * PeerLink is an RTCPeerConnection (pc) to the other peer of a topic, negotiated through
 * a Signal (signal) with the perfect-negotiation pattern; see Client.peerConnection.
 */
class PeerLink {
  constructor(client, topic, options) {
    if (typeof RTCPeerConnection === "undefined") throw new TypeError("topicast: no RTCPeerConnection in this browser");
    this.pc = new RTCPeerConnection(options.config || {});
    this.signal = client.signal(topic, { id: options.id });
    this._polite = options.polite;
    this._makingOffer = false;
    this._ignoreOffer = false;
    this._negotiate = false; // negotiation was needed before the peer showed up
    this._chain = Promise.resolve(); // the signals, one after the other
    this._closed = false;
    /** peer resolves to the other peer's id once it showed up. */
    this.peer = new Promise((resolve) => (this._resolvePeer = resolve));
    this.signal.onPeer = (from) => {
      if (from !== this.signal.peer) return; // one peer: the first
      this._resolvePeer(from);
      if (this._negotiate) this._offer();
    };
    this.signal.onSignal = (data, from) => {
      if (from !== this.signal.peer) return;
      this._chain = this._chain.then(() => this._onSignal(data)).catch((e) => {
        if (!this._closed) report(e);
      });
    };
    this.pc.onnegotiationneeded = () => {
      if (this.signal.peer) this._offer();
      else this._negotiate = true;
    };
    this.pc.onsignalingstatechange = () => {
      if (this._negotiate && this.signal.peer && this.pc.signalingState === "stable") this._offer();
    };
    this.pc.onicecandidate = ({ candidate }) => {
      if (candidate && this.signal.peer) this.signal.send({ candidate: candidate.toJSON() }).catch(() => {});
    };
  }

  /** close closes the peer connection and the signalling. */
  close() {
    this._closed = true;
    this.pc.close();
    return this.signal.close();
  }

  get _isPolite() {
    return this._polite ?? this.signal.id < this.signal.peer;
  }

  async _offer() {
    // Not in the middle of an exchange: offer once it is over (onsignalingstatechange).
    if (this.pc.signalingState !== "stable") {
      this._negotiate = true;
      return;
    }
    this._negotiate = false;
    try {
      this._makingOffer = true;
      await this.pc.setLocalDescription();
      await this.signal.send({ description: this.pc.localDescription.toJSON() });
    } catch (e) {
      if (!this._closed) report(e);
    } finally {
      this._makingOffer = false;
    }
  }

  async _onSignal({ description, candidate } = {}) {
    const pc = this.pc;
    if (description) {
      const collision = description.type === "offer" && (this._makingOffer || pc.signalingState !== "stable");
      this._ignoreOffer = !this._isPolite && collision;
      if (this._ignoreOffer) return;
      await pc.setRemoteDescription(description); // rolls back this side's offer if need be
      if (description.type === "offer") {
        await pc.setLocalDescription();
        await this.signal.send({ description: pc.localDescription.toJSON() });
      }
    } else if (candidate) {
      try {
        await pc.addIceCandidate(candidate);
      } catch (e) {
        if (!this._ignoreOffer) throw e; // a candidate of the offer ignored: expected
      }
    }
  }
}

function randomId() {
  if (globalThis.crypto?.randomUUID) return crypto.randomUUID();
  return Math.random().toString(36).slice(2) + Date.now().toString(36);
}

// --- transports ---
//
// A connection (conn) has: name, canPublish, datagrams, heartbeats, send(frame object),
// close(code, reason), abort(reason), closed (a promise of {code, reason}), onFrame
// (set by the client), and gotFrame, lastRead, lastWrite, lastPing.

class BaseConn {
  constructor(name) {
    this.name = name;
    this.canPublish = true;
    this.datagrams = false;
    this.heartbeats = true;
    this.onFrame = () => {};
    this.gotFrame = false;
    this.lastRead = this.lastWrite = Date.now();
    this.lastPing = 0;
    this._done = false;
    this.closed = new Promise((resolve) => (this._resolveClosed = resolve));
  }

  // _finish ends the connection once, with info {code, reason}.
  _finish(info) {
    if (this._done) return;
    this._done = true;
    this.onFrame = () => {};
    this._resolveClosed(info);
  }

  abort(reason) {
    this._finish({ code: 1006, reason });
    this.close(1000, reason);
  }

  _lines(text, datagram) {
    for (const line of text.split("\n")) {
      if (!line.trim()) continue;
      let f;
      try {
        f = JSON.parse(line);
      } catch {
        continue; // not JSON: ignored
      }
      if (!this._take(f, datagram)) this.onFrame(f, datagram, line);
    }
  }

  // _take lets a transport keep a frame for itself (true) rather than the client.
  _take() {
    return false;
  }
}

class WSConn extends BaseConn {
  constructor(ws) {
    super("websocket");
    this._ws = ws;
    ws.onmessage = (e) => {
      if (typeof e.data === "string") this._lines(e.data, false);
    };
    ws.onclose = (e) => this._finish({ code: e.code, reason: e.reason });
  }

  send(f) {
    if (this._done || this._ws.readyState !== WebSocket.OPEN) return;
    this.lastWrite = Date.now();
    this._ws.send(JSON.stringify(f));
  }

  close(code, reason) {
    try {
      this._ws.close(code, reason);
    } catch {
      this._ws.close();
    }
  }
}

function openWebSocket(c, token) {
  if (typeof WebSocket === "undefined") return Promise.reject(new Error("no WebSocket in this browser"));
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(c._base.replace(/^http/, "ws") + "/ws");
    const timer = setTimeout(() => {
      ws.close();
      reject(new Error("timed out"));
    }, c._o.connectTimeout);
    ws.onopen = () => {
      clearTimeout(timer);
      const cn = new WSConn(ws);
      if (token) cn.send({ op: "hello", token }); // first on the connection
      resolve(cn);
    };
    ws.onerror = () => {}; // onclose follows
    ws.onclose = (e) => {
      clearTimeout(timer);
      reject(new Error(`closed before it opened (${e.code})`));
    };
  });
}

class WTConn extends BaseConn {
  constructor(wt, writer, reader) {
    super("webtransport");
    this.datagrams = true;
    this._wt = wt;
    this._writer = writer;
    this._encoder = new TextEncoder();
    wt.closed.then(
      (i) => this._finish({ code: i.closeCode, reason: i.reason }),
      (e) => this._finish({ code: 1006, reason: e.message }),
    );
    this._readStream(reader);
    this._readDatagrams(wt.datagrams.readable.getReader());
  }

  async _readStream(reader) {
    const decoder = new TextDecoder();
    let buf = "";
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += decoder.decode(value, { stream: true });
        const end = buf.lastIndexOf("\n");
        if (end < 0) continue;
        this._lines(buf.slice(0, end), false); // NDJSON: complete lines only
        buf = buf.slice(end + 1);
      }
      this._lost("the server ended the stream");
    } catch (e) {
      this._lost(e.message);
    }
  }

  // _lost ends the connection after its stream failed; the session's close (and its
  // code, 4008 say) usually comes with the stream's reset, so wait a little for it.
  _lost(reason) {
    setTimeout(() => {
      if (this._done) return;
      this._finish({ code: 1006, reason });
      this.close(1000, "");
    }, 500);
  }

  async _readDatagrams(reader) {
    const decoder = new TextDecoder();
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        this._lines(decoder.decode(value), true);
      }
    } catch {
      // the session is gone; wt.closed reports it
    }
  }

  send(f) {
    if (this._done) return;
    this.lastWrite = Date.now();
    this._writer.write(this._encoder.encode(JSON.stringify(f) + "\n")).catch(() => {});
  }

  close(code, reason) {
    try {
      this._wt.close({ closeCode: code, reason: reason || "" });
    } catch {
      // closed already
    }
  }
}

async function openWebTransport(c, token) {
  if (typeof WebTransport === "undefined") throw new Error("no WebTransport in this browser");
  const info = await withTimeout(fetch(c._base + "/v1/info").then((r) => {
    if (!r.ok) throw new Error(`GET /v1/info: ${r.status}`);
    return r.json();
  }), c._o.connectTimeout);
  const wtInfo = info.webtransport;
  if (!wtInfo || !wtInfo.url) throw new Error("the server does not offer WebTransport");
  const opts = {};
  if (wtInfo.certHash) {
    const bytes = new Uint8Array(wtInfo.certHash.match(/[0-9a-f]{2}/gi).map((h) => parseInt(h, 16)));
    opts.serverCertificateHashes = [{ algorithm: "sha-256", value: bytes }];
  }
  const wt = new WebTransport(wtInfo.url, opts);
  wt.closed.catch(() => {}); // reported by the connection
  try {
    await withTimeout(wt.ready, c._o.connectTimeout);
    const stream = await withTimeout(wt.createBidirectionalStream(), c._o.connectTimeout);
    const cn = new WTConn(wt, stream.writable.getWriter(), stream.readable.getReader());
    // The server sees the stream only once something was written on it.
    cn.send(token ? { op: "hello", token } : { op: "ping" });
    return cn;
  } catch (e) {
    try {
      wt.close();
    } catch {
      // not open
    }
    throw e;
  }
}

// RTCConn speaks frames over the data channels of a peer connection to the server:
// "topicast" as a WebSocket (frames joined by "\n"), "topicast-datagram" one msg frame
// per channel message, given to the client as datagrams.
class RTCConn extends BaseConn {
  constructor(pc, ch, dg) {
    super("webrtc");
    this.datagrams = true; // "topicast" carries them until "topicast-datagram" is open
    this._pc = pc;
    this._ch = ch;
    this._closing = null; // {code, reason} of the server's close frame
    ch.binaryType = dg.binaryType = "arraybuffer";
    const text = (d) => (typeof d === "string" ? d : UTF8D.decode(d)); // both are accepted
    ch.onmessage = (e) => this._lines(text(e.data), false);
    dg.onmessage = (e) => {
      if (!this._closing) this._lines(text(e.data), true);
    };
    ch.onclose = () => this._end("the data channel closed");
    ch.onerror = (e) => this._end(`the data channel failed: ${e.error?.message || "error"}`);
    pc.onconnectionstatechange = () => {
      const st = pc.connectionState;
      if (st === "failed" || st === "closed") this._end(`the peer connection ${st}`);
    };
  }

  // _take keeps the server's close frame: an error with no id and no topic whose code
  // names a close code. The peer connection's close, which follows, ends the connection
  // with that code; frames after it are ignored.
  _take(f, datagram) {
    if (this._closing) return true;
    const code = closeCode(f.code);
    if (datagram || f.op !== "error" || f.id || f.topic || !code) return false;
    this._closing = { code, reason: f.message || "" };
    setTimeout(() => this._end("the server did not close"), RTC_CLOSE_WAIT);
    return true;
  }

  // _end finishes the connection, with the code of the server's close frame if one
  // came (else 1006), and closes the peer connection.
  _end(reason) {
    this._finish(this._closing || { code: 1006, reason });
    this._shut();
  }

  _shut() {
    try {
      this._pc.close();
    } catch {
      // closed already
    }
  }

  send(f) {
    if (this._done || this._ch.readyState !== "open") return;
    this.lastWrite = Date.now();
    try {
      this._ch.send(JSON.stringify(f));
    } catch (e) {
      this.abort(`send: ${e.message}`); // over the channel's buffer, or closing
    }
  }

  close(code, reason) {
    // The client ends a session by closing its peer connection; the server sees it go.
    this._finish({ code, reason: reason || "" });
    this._shut();
  }
}

// closedConn is a connection that ended before it began, with info {code, reason}: a 401
// answer to a WebRTC offer reads as the 4001 close a WebSocket would have had.
function closedConn(name, info) {
  const cn = new BaseConn(name);
  cn.send = () => {};
  cn.close = () => {};
  cn._finish(info);
  return cn;
}

async function openWebRTC(c, token) {
  if (typeof RTCPeerConnection === "undefined") throw new Error("no RTCPeerConnection in this browser");
  const deadline = Date.now() + c._o.connectTimeout;
  const left = () => Math.max(deadline - Date.now(), 0);
  const infoURL = c._base + "/v1/info";
  const info = await withTimeout(fetch(infoURL).then((r) => {
    if (!r.ok) throw new Error(`GET /v1/info: ${r.status}`);
    return r.json();
  }), left());
  const rtc = info.webrtc;
  if (!rtc || !rtc.url) throw new Error("the server does not offer WebRTC");
  const url = new URL(rtc.url, infoURL).href; // relative to the server's URL
  const iceServers = (rtc.iceServers || []).map((u) => (typeof u === "string" ? { urls: u } : u));
  const pc = new RTCPeerConnection({ iceServers });
  try {
    const ch = pc.createDataChannel("topicast");
    const dg = pc.createDataChannel("topicast-datagram", { ordered: false, maxRetransmits: 0 });
    await pc.setLocalDescription(await pc.createOffer());
    // One round trip: the offer goes with every candidate (or those of the first 5 s).
    await iceGathered(pc, Math.min(RTC_GATHER_TIMEOUT, left()));
    const headers = { "Content-Type": "application/sdp" };
    if (token) headers.Authorization = `Bearer ${token}`;
    const r = await withTimeout(fetch(url, { method: "POST", headers, body: pc.localDescription.sdp }), left());
    if (r.status !== 201) {
      const body = await r.json().catch(() => null);
      const e = body && body.error;
      if (r.status === 401) {
        pc.close();
        return closedConn("webrtc", { code: 4001, reason: e?.message || "unauthorized" });
      }
      throw new Error(`POST ${rtc.url}: ${r.status}${e ? ` ${e.code}: ${e.message}` : ""}`);
    }
    await pc.setRemoteDescription({ type: "answer", sdp: await withTimeout(r.text(), left()) });
    await channelOpen(pc, ch, left());
    return new RTCConn(pc, ch, dg);
  } catch (e) {
    pc.close();
    throw e;
  }
}

// iceGathered resolves once pc has gathered its ICE candidates, or after ms.
function iceGathered(pc, ms) {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(t);
      pc.removeEventListener("icegatheringstatechange", check);
      pc.removeEventListener("icecandidate", check);
      resolve();
    };
    const check = (e) => {
      if (pc.iceGatheringState === "complete" || (e && e.type === "icecandidate" && !e.candidate)) done();
    };
    const t = setTimeout(done, ms);
    pc.addEventListener("icegatheringstatechange", check);
    pc.addEventListener("icecandidate", check);
    check();
  });
}

// channelOpen resolves once ch is open; it rejects when pc fails first, or after ms.
function channelOpen(pc, ch, ms) {
  return new Promise((resolve, reject) => {
    const end = (err) => {
      clearTimeout(t);
      ch.onopen = ch.onclose = pc.onconnectionstatechange = null;
      if (err) reject(new Error(err));
      else resolve();
    };
    const t = setTimeout(() => end(`timed out (ICE ${pc.iceConnectionState}, ${pc.connectionState})`), ms);
    ch.onopen = () => end(null);
    ch.onclose = () => end("the data channel closed before it opened");
    pc.onconnectionstatechange = () => {
      if (pc.connectionState === "failed" || pc.connectionState === "closed") end(`the peer connection ${pc.connectionState}`);
    };
    if (ch.readyState === "open") end(null);
  });
}

// SSEConn speaks the frame protocol over EventSource: it answers sub and unsub itself
// from the stream's ready event, and restarts the stream (resuming with the last event
// id as cursor) whenever the set of topics changes.
class SSEConn extends BaseConn {
  constructor(c, token) {
    super("sse");
    this.canPublish = false;
    this.heartbeats = false; // the server's keep-alives are comments, invisible here
    this._c = c;
    this._token = token;
    this._topics = new Map(); // topic -> {id, since} of a sub not answered yet, or null once answered
    this._ready = null; // topics of the current stream's ready event
    this._held = new Map(); // topic -> msg frames that came before the sub was answered
    this._latest = new Set(); // topics subscribed with mode "latest"
    this._es = null;
    this._restartPending = false;
  }

  // _start opens the stream for the current topics; it resolves at its ready event.
  _start() {
    if (this._es) this._es.close();
    this._es = null;
    this._ready = null;
    const topics = [...this._topics.keys()];
    if (!topics.length) return Promise.resolve();
    const q = new URLSearchParams();
    for (const t of topics) q.append("topic", t);
    // mode=latest covers the whole stream: only when every topic asked for it.
    if (topics.every((t) => this._latest.has(t))) q.set("mode", "latest");
    if (this._c._sseCursor) q.set("cursor", this._c._sseCursor);
    if (this._token) q.set("token", this._token);
    const es = new EventSource(`${this._c._base}/v1/sse?${q}`);
    this._es = es;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => fail("timed out"), this._c._o.connectTimeout);
      const fail = (reason) => {
        clearTimeout(timer);
        es.close();
        if (this._es === es) this._finish({ code: 1006, reason: "sse: " + reason });
        reject(new Error(reason));
      };
      es.onerror = (e) => {
        if (typeof e.data === "string") {
          // An "error" event of the server (an error frame), not a failure.
          try {
            this.onFrame(JSON.parse(e.data), false);
          } catch {
            // not JSON: ignored
          }
          return;
        }
        fail("the stream failed");
      };
      es.addEventListener("ready", (e) => {
        clearTimeout(timer);
        if (e.lastEventId) this._c._sseCursor = e.lastEventId;
        try {
          this._ready = JSON.parse(e.data).topics || {};
        } catch {
          fail("bad ready event");
          return;
        }
        this.gotFrame = true;
        this._answerAll();
        resolve();
      });
      es.onmessage = (e) => {
        let f;
        try {
          f = JSON.parse(e.data);
        } catch {
          return;
        }
        if (e.lastEventId) this._c._sseCursor = e.lastEventId;
        this.lastRead = Date.now();
        if (this._topics.get(f.topic)) {
          const held = this._held.get(f.topic) || [];
          held.push(f);
          this._held.set(f.topic, held);
          return;
        }
        this.onFrame(f, false);
      };
    });
  }

  // _answerAll answers the subs waiting for this stream's ready event, and reports
  // topics whose resumption failed.
  _answerAll() {
    for (const [topic, pending] of this._topics) {
      const r = this._ready[topic];
      if (!r || (pending && !pending.id)) continue;
      if (pending) {
        const since = pending.since;
        let recovered = r.recovered;
        if (since && since.epoch === r.epoch && since.seq === r.seq) recovered = true; // nothing missed
        if (since && recovered === undefined) recovered = false;
        this._topics.set(topic, null);
        const ok = { op: "ok", id: pending.id, topic, epoch: r.epoch, seq: r.seq };
        if (since) ok.recovered = recovered;
        this.onFrame(ok, false);
        for (const f of this._held.get(topic) || []) this.onFrame(f, false);
        this._held.delete(topic);
      } else if (r.recovered === false) {
        this.onFrame({ op: "reset", topic, epoch: r.epoch, seq: r.seq, reason: "not recovered" }, false);
      }
    }
  }

  _restart() {
    if (this._restartPending) return;
    this._restartPending = true;
    queueMicrotask(() => {
      this._restartPending = false;
      if (!this._done) this._start().catch(() => {}); // a failure ends the connection
    });
  }

  send(f) {
    if (this._done) return;
    if (f.op === "sub") {
      this._topics.set(f.topic, { id: f.id, since: f.since });
      if (f.mode === "latest") this._latest.add(f.topic);
      else this._latest.delete(f.topic);
      if (this._ready && this._ready[f.topic]) queueMicrotask(() => !this._done && this._answerAll());
      else this._restart();
    } else if (f.op === "unsub") {
      this._topics.delete(f.topic);
      this._latest.delete(f.topic);
      this._held.delete(f.topic);
      queueMicrotask(() => this.onFrame({ op: "ok", id: f.id }, false));
      this._restart();
    } else if (f.op === "ping") {
      queueMicrotask(() => this.onFrame({ op: "pong" }, false));
    }
  }

  close() {
    if (this._es) this._es.close();
    this._es = null;
    this._finish({ code: 1000, reason: "" });
  }
}

async function openSSE(c, token) {
  if (typeof EventSource === "undefined") throw new Error("no EventSource in this browser");
  const cn = new SSEConn(c, token);
  // id 0: the stream carries the topic, and its sub comes once the client attaches cn
  // (its messages are held until then).
  for (const s of c._subs.values()) cn._topics.set(s.topic, { id: 0, since: null });
  await cn._start();
  return cn;
}

const OPENERS = { webtransport: openWebTransport, webrtc: openWebRTC, websocket: openWebSocket, sse: openSSE };

// --- helpers ---

// backoff is the wait before the attempt-th consecutive retry: a random time in
// [0, min(max, base * 2^attempt)] ("full jitter").
function backoff(attempt, base, max) {
  const ceil = Math.min(max, base * 2 ** Math.min(attempt, 30));
  return Math.random() * ceil;
}

function withTimeout(promise, ms) {
  let t;
  return Promise.race([
    promise,
    new Promise((_, reject) => (t = setTimeout(() => reject(new Error("timed out")), ms))),
  ]).finally(() => clearTimeout(t));
}

function report(e) {
  if (typeof reportError === "function") reportError(e);
  else setTimeout(() => { throw e; });
}

const UTF8 = new TextEncoder();
const UTF8D = new TextDecoder();

// --- fossil delta decoder ---
// applyDelta is the decoder of fossil-delta-js 2.0.0 (npm "fossil-delta"), reduced to what
// applying a delta needs. Copyright 2014-2024 Dmitry Chestnykh (JavaScript port), 2007
// D. Richard Hipp (original C version); BSD 2-clause licence, in LICENSE.fossil-delta beside
// this file (and at https://github.com/dchest/fossil-delta-js).

const FOSSIL_VALUE = [
  -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
  -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
  -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, -1, -1,
  -1, -1, -1, -1, -1, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23,
  24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, -1, -1, -1, -1, 36, -1, 37,
  38, 39, 40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56,
  57, 58, 59, 60, 61, 62, -1, -1, -1, 63, -1,
];

class FossilReader {
  constructor(a) {
    this.a = a;
    this.pos = 0;
  }
  haveBytes() {
    return this.pos < this.a.length;
  }
  getByte() {
    const b = this.a[this.pos];
    this.pos++;
    if (this.pos > this.a.length) throw new RangeError("out of bounds");
    return b;
  }
  getChar() {
    return String.fromCharCode(this.getByte());
  }
  getInt() {
    let v = 0;
    let c;
    while (this.haveBytes() && (c = FOSSIL_VALUE[0x7f & this.getByte()]) >= 0) v = (v << 6) + c;
    this.pos--;
    return v >>> 0;
  }
}

function fossilChecksum(arr) {
  let sum0 = 0, sum1 = 0, sum2 = 0, sum3 = 0, z = 0, N = arr.length;
  while (N >= 4) {
    sum0 = (sum0 + arr[z + 0]) | 0;
    sum1 = (sum1 + arr[z + 1]) | 0;
    sum2 = (sum2 + arr[z + 2]) | 0;
    sum3 = (sum3 + arr[z + 3]) | 0;
    z += 4;
    N -= 4;
  }
  sum3 = (((((sum3 + (sum2 << 8)) | 0) + (sum1 << 16)) | 0) + (sum0 << 24)) | 0;
  switch (N) {
    case 3:
      sum3 = (sum3 + (arr[z + 2] << 8)) | 0; /* falls through */
    case 2:
      sum3 = (sum3 + (arr[z + 1] << 16)) | 0; /* falls through */
    case 1:
      sum3 = (sum3 + (arr[z + 0] << 24)) | 0; /* falls through */
  }
  return sum3 >>> 0;
}

// applyDelta returns the bytes (Uint8Array) that delta (Uint8Array) builds from source.
function applyDelta(source, delta) {
  let total = 0;
  const zDelta = new FossilReader(delta);
  const lenSrc = source.length;
  const lenDelta = delta.length;
  const limit = zDelta.getInt();
  if (zDelta.getChar() !== "\n") throw new Error("size integer not terminated by '\\n'");
  const out = new Uint8Array(limit);
  while (zDelta.haveBytes()) {
    const cnt = zDelta.getInt();
    switch (zDelta.getChar()) {
      case "@": {
        const ofst = zDelta.getInt();
        if (zDelta.haveBytes() && zDelta.getChar() !== ",") throw new Error("copy command not terminated by ','");
        if (total + cnt > limit) throw new Error("copy exceeds output file size");
        if (ofst + cnt > lenSrc) throw new Error("copy extends past end of input");
        out.set(source.subarray(ofst, ofst + cnt), total);
        total += cnt;
        break;
      }
      case ":":
        if (total + cnt > limit) throw new Error("insert command gives an output larger than predicted");
        if (cnt > lenDelta || zDelta.pos + cnt > lenDelta) throw new Error("insert count exceeds size of delta");
        out.set(delta.subarray(zDelta.pos, zDelta.pos + cnt), total);
        total += cnt;
        zDelta.pos += cnt;
        break;
      case ";":
        if (cnt !== fossilChecksum(out.subarray(0, total))) throw new Error("bad checksum");
        if (total !== limit) throw new Error("generated size does not match predicted size");
        return out;
      default:
        throw new Error("unknown delta operator");
    }
  }
  throw new Error("unterminated delta");
}
