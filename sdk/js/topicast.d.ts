// Type declarations of topicast.js, the browser client of topicast (docs/protocol.md).
// The server serves them at /topicast.d.ts beside /topicast.js; test/typescript checks
// them with the TypeScript compiler against a typed example.

/** A JSON value, as messages carry them. */
export type JSONValue = string | number | boolean | null | JSONValue[] | { [key: string]: JSONValue };

/** The transports connect tries, in order. */
export type TransportName = "webtransport" | "websocket" | "sse";

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
  | { type: "error"; code: string; message: string }
  /** The client stopped for good; calls reject from then on. */
  | { type: "closed"; code: number; reason: string };

export interface ConnectOptions {
  /** The server's http(s) base URL; default location.origin. */
  url?: string;
  /** A client token (JWT) sent with each connection. */
  token?: string;
  /** Called for a fresh token before each connection. */
  tokenFunc?: () => Promise<string>;
  /** Default ["webtransport", "websocket", "sse"]. */
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
  /** WebTransport datagrams: lossy, latest-wins delivery. */
  delivery?: "datagram";
  /** Latest-value subscription: a client that falls behind gets the newest message. */
  mode?: "latest";
  /** Messages as fossil deltas of the one before, applied by the client. */
  delta?: "fossil";
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
  /** Ends the subscription; the handler is not called again. */
  unsubscribe(): Promise<void>;
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
  /** Closes the connection and stops the client; pending calls reject. */
  close(): void;
}

/** Opens a client; resolves once one transport is up, rejects when every one failed once. */
export function connect(options?: ConnectOptions): Promise<Client>;
