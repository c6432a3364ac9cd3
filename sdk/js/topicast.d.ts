// Type declarations of topicast.js, the browser client of topicast (docs/protocol.md).
// The server serves them at /topicast.d.ts beside /topicast.js; test/typescript checks
// them with the TypeScript compiler against a typed example.

/** A JSON value, as messages carry them. */
export type JSONValue = string | number | boolean | null | JSONValue[] | { [key: string]: JSONValue };

/**
 * The transports connect tries, in order: WebTransport, WebRTC (data channels to the
 * server, signalled with one POST /v1/webrtc), WebSocket, Server-Sent Events.
 */
export type TransportName = "webtransport" | "webrtc" | "websocket" | "sse";

/** A position in a topic: the epoch and the seq of a message. */
export interface Position {
  epoch: string;
  seq: number;
}

/** One message of a topic, as the handler of a subscription gets it. */
export interface Message<T = JSONValue> {
  topic: string;
  epoch: string;
  seq: number;
  /** The publish time, Unix milliseconds. */
  ts: number;
  data: T;
}

/**
 * A presence member: its client (the token's sub, or its connection's id without tokens),
 * its connection's id (unique in the cluster) and the info it entered with, if any.
 */
export interface Member {
  client: string;
  conn: string;
  info?: JSONValue;
}

/** Who is in a topic: count is the full number, members lists at most 1000 of them. */
export interface PresenceList {
  count: number;
  members: Member[];
}

/** What the client tells options.onEvent. */
export type ClientEvent =
  | { type: "connected"; transport: TransportName }
  | { type: "disconnected"; transport: TransportName; code: number; reason: string }
  | {
      type: "reset";
      topic: string;
      epoch: string;
      seq: number;
      reason: string;
      recovered: false;
    }
  | { type: "gap"; topic: string; epoch: string; seq: number }
  | { type: "subscription_ended"; topic: string; code: string; message: string }
  /** With a topic: the server refused to let the client enter it again after a reconnection. */
  | { type: "error"; code: string; message: string; topic?: string }
  /** Presence events of a subscription with {presence: true}. */
  | { type: "join"; topic: string; client: string; conn: string; info?: JSONValue }
  | { type: "update"; topic: string; client: string; conn: string; info?: JSONValue }
  | { type: "leave"; topic: string; client: string; conn: string }
  /** The client stopped for good; calls reject from then on. */
  | { type: "closed"; code: number; reason: string };

export interface ConnectOptions {
  /** The server's http(s) base URL; default location.origin. */
  url?: string;
  /** A client token (JWT) sent with each connection. */
  token?: string;
  /** Called for a fresh token before each connection. */
  tokenFunc?: () => Promise<string>;
  /** Default ["webtransport", "webrtc", "websocket", "sse"]; leave one out to exclude it. */
  transports?: TransportName[];
  onEvent?: (event: ClientEvent) => void;
  /** Milliseconds: the ceiling of the first retry's random wait (100). */
  minBackoff?: number;
  /** Milliseconds: the largest ceiling (10000). */
  maxBackoff?: number;
  /** Milliseconds: one connection attempt (10000). */
  connectTimeout?: number;
  /** Milliseconds without traffic before the client pings (25000). */
  pingAfter?: number;
  /** Milliseconds without a frame before the client gives a connection up (60000). */
  silenceTimeout?: number;
}

export interface SubscribeOptions {
  /** Recover the messages after this position (kept from Subscription.position). */
  since?: Position;
  /** WebTransport datagrams or the WebRTC datagram channel: lossy, latest-wins delivery. */
  delivery?: "datagram";
  /** Latest-value subscription: a client that falls behind gets the newest message. */
  mode?: "latest";
  /** Messages as fossil deltas of the one before, applied by the client. */
  delta?: "fossil";
  /** Also receive the topic's presence events ("join", "update", "leave") in onEvent. */
  presence?: boolean;
}

export class TopicastError extends Error {
  /** A protocol error code ("forbidden", "unavailable"...) or "closed". */
  readonly code: string;
  constructor(code: string, message: string);
}

export interface Subscription {
  readonly topic: string;
  /** Resolves once the server confirmed the subscription; rejects if it refused it. */
  readonly ready: Promise<Subscription>;
  /** The position of the last message delivered (or the head at subscription). */
  readonly position: Position | null;
  /** Ends the subscription, and its membership; the handler is not called again. */
  unsubscribe(): Promise<void>;
  /**
   * Makes this connection a presence member of the topic with info (at most 1 KiB of JSON),
   * or changes its info; the client enters again with it after every reconnection.
   */
  enter(info?: JSONValue): Promise<void>;
  /** Ends the membership that enter started. */
  leave(): Promise<void>;
  /** Who is in the topic. */
  presence(): Promise<PresenceList>;
}

/** Options of Client.signal. */
export interface SignalOptions {
  /** This peer's id, the `from` of what it publishes; default a random UUID. */
  id?: string;
  /** Gets the other peers' signals (what they passed to send) and who sent them. */
  onSignal?: (data: JSONValue, from: string) => void;
  /** Called once for each peer that shows up on the topic. */
  onPeer?: (from: string) => void;
  /** Called when a peer says goodbye (its close()). */
  onBye?: (from: string) => void;
}

/**
 * The signalling of a peer-to-peer session over a topic that only the peers may use:
 * every message published is {from: id, ...}; a peer ignores its own, and those sent to
 * another.
 */
export interface Signal {
  readonly topic: string;
  /** This peer's id. */
  readonly id: string;
  /** The first other peer that showed up, or null. */
  readonly peer: string | null;
  /** Resolves once subscribed to the topic and announced to the peers. */
  readonly ready: Promise<Signal>;
  onSignal: ((data: JSONValue, from: string) => void) | null;
  onPeer: ((from: string) => void) | null;
  onBye: ((from: string) => void) | null;
  /** Publishes data to peer `to` (default: peer, or every peer while none showed up). */
  send(data: JSONValue, to?: string): Promise<Position>;
  /** Says goodbye to the peers and unsubscribes. */
  close(): Promise<void>;
}

/** Options of Client.peerConnection. */
export interface PeerConnectionOptions {
  /** The RTCPeerConnection's configuration (iceServers: STUN and TURN); default none. */
  config?: RTCConfiguration;
  /** The side that gives way when both offer at once; default: the smaller id. */
  polite?: boolean;
  /** This peer's id (SignalOptions.id). */
  id?: string;
}

/** A peer connection to the other peer of a topic, negotiated through a Signal. */
export interface PeerLink {
  /** Add data channels and tracks to it, on either side, at any time. */
  readonly pc: RTCPeerConnection;
  readonly signal: Signal;
  /** Resolves to the other peer's id once it showed up. */
  readonly peer: Promise<string>;
  /** Closes the peer connection and the signalling. */
  close(): Promise<void>;
}

export interface Client {
  /** The current transport, or null while disconnected. */
  readonly transport: TransportName | null;
  /**
   * Calls onMessage for every message of topic from now (or after options.since), once and
   * in order, across reconnections.
   */
  subscribe<T = JSONValue>(
    topic: string,
    onMessage: (message: Message<T>) => void,
    options?: SubscribeOptions,
  ): Subscription;
  /** Publishes data (any JSON value) to topic; resolves to its position. */
  publish(topic: string, data: JSONValue): Promise<Position>;
  /**
   * Signalling for peer-to-peer WebRTC on topic (offers, answers and candidates as
   * ordinary messages, which the server never inspects).
   */
  signal(topic: string, options?: SignalOptions): Signal;
  /** An RTCPeerConnection to the other peer on topic, with perfect negotiation. */
  peerConnection(topic: string, options?: PeerConnectionOptions): PeerLink;
  /** Closes the connection and stops the client; pending calls reject. */
  close(): void;
}

/** Opens a client; resolves once one transport is up, rejects when every one failed once. */
export function connect(options?: ConnectOptions): Promise<Client>;
