// A typed application of topicast.js: `tsc -p test/typescript` (scripts/test.sh) checks
// that sdk/js/topicast.d.ts describes the client as an application uses it. It is
// compiled, never run.
import {
  connect,
  TopicastError,
  type ClientEvent,
  type Member,
  type Message,
  type PeerLink,
  type Position,
  type PresenceList,
  type Signal,
  type TransportName,
} from "../../sdk/js/topicast.js";

interface Score {
  home: number;
  away: number;
}

function describe(e: ClientEvent): string {
  switch (e.type) {
    case "connected":
      return `connected over ${e.transport}`;
    case "disconnected":
      return `disconnected (${e.code} ${e.reason})`;
    case "reset":
      return `${e.topic} restarts at ${e.epoch}:${e.seq} (${e.reason})`;
    case "gap":
      return `${e.topic}: gap after ${e.seq}`;
    case "subscription_ended":
      return `${e.code}: ${e.message}`;
    case "error":
      return `${e.topic ?? ""} ${e.code}: ${e.message}`;
    case "join":
    case "update":
      return `${e.type} ${e.topic} ${e.client} ${e.conn} ${JSON.stringify(e.info ?? null)}`;
    case "leave":
      return `leave ${e.topic} ${e.client} ${e.conn}`;
    case "closed":
      return `closed for good (${e.code})`;
  }
}

export async function main(): Promise<Position> {
  const client = await connect({
    url: "http://127.0.0.1:8080",
    transports: ["webtransport", "webrtc", "websocket", "sse"],
    tokenFunc: async () => "jwt",
    onEvent: (e) => console.log(describe(e)),
    minBackoff: 50,
  });
  const scores = client.subscribe<Score>("scores", (m: Message<Score>) => {
    const total: number = m.data.home + m.data.away;
    console.log(m.topic, m.epoch, m.seq, new Date(m.ts), total);
  }, { delta: "fossil" });
  await scores.ready;
  const kept: Position | null = scores.position;
  client.subscribe("cpu", (m) => console.log(m.data), { mode: "latest" });
  client.subscribe("positions", (m) => console.log(m.seq), { delivery: "datagram" });
  if (kept) client.subscribe("scores.replay", () => {}, { since: kept });
  const room = client.subscribe("room.1", () => {}, { presence: true });
  await room.ready;
  await room.enter({ name: "ada", tags: ["a"] });
  await room.enter();
  const who: PresenceList = await room.presence();
  const first: Member | undefined = who.members[0];
  console.log(who.count, first?.client, first?.conn, first?.info);
  await room.leave();
  // What the declarations must refuse: tsc fails on an expect-error that is not one.
  // @ts-expect-error: mode is "latest" or absent
  client.subscribe("x", () => {}, { mode: "all" });
  // @ts-expect-error: data is a JSON value
  void client.publish("x", () => 1);
  // @ts-expect-error: unknown transport
  void connect({ transports: ["carrier-pigeon"] });
  // @ts-expect-error: info is a JSON value
  void room.enter(() => 1);
  // @ts-expect-error: presence is a boolean
  client.subscribe("y", () => {}, { presence: "all" });
  const onLeave = (e: ClientEvent) => {
    // @ts-expect-error: a leave event carries no info
    if (e.type === "leave") console.log(e.info);
  };
  onLeave({ type: "leave", topic: "room.1", client: "ada", conn: "n1-ws-1" });
  // Peer-to-peer WebRTC signalled through a topic.
  const link: PeerLink = client.peerConnection("p2p.room1", { config: { iceServers: [] }, polite: true });
  const chat: RTCDataChannel = link.pc.createDataChannel("chat", { negotiated: true, id: 0 });
  chat.onmessage = (e) => console.log(e.data);
  const peer: string = await link.peer;
  console.log(peer, link.signal.id);
  await link.close();
  const sig: Signal = client.signal("p2p.room2", { onSignal: (data, from) => console.log(data, from) });
  sig.onPeer = (from: string) => void sig.send({ hello: from }, from);
  sig.onBye = null;
  await sig.ready;
  const at: Position = await sig.send({ candidate: null });
  console.log(at.seq, sig.peer ?? "nobody yet");
  // @ts-expect-error: data is a JSON value
  void sig.send(() => 1);
  await sig.close();
  const tr: TransportName | null = client.transport;
  if (tr === "webrtc") console.log("data channels to the server");
  try {
    return await client.publish("chat", { text: "hi", tags: ["a"], n: 1, ok: true, none: null });
  } catch (e) {
    if (e instanceof TopicastError && e.code === "forbidden") throw new Error("no right to publish");
    throw e;
  } finally {
    await scores.unsubscribe();
    client.close();
  }
}
