import { ProtocolError } from "../errors.ts";
import { FRAME_OVERHEAD_BYTES, type FrameOpener, type FrameSealer } from "../crypto/core/frame-seal.ts";
import { decodeBody, encodeMessage, FrameDecoder } from "./core/codec.ts";
import { MAX_FRAME_BYTES, type IndexMessage } from "./core/messages.ts";

export interface FramedPeerHandler {
  onMessage(msg: IndexMessage): void;
  /** The peer sent bytes that can never be a valid frame: the shell reports and closes. */
  onProtocolError(err: ProtocolError): void;
}

/**
 * The byte stream under a peer: a Bun `Socket` is one as it is (the master's side); the client's
 * `node:net` socket is adapted (index-client.ts). `write` returns how many bytes were taken.
 */
export interface ByteStream {
  write(bytes: Uint8Array): number;
  /** Close after what was written has gone out. */
  end(): unknown;
  /** Close now, discarding anything unsent. */
  terminate(): unknown;
}

/** Beyond this much unsent output the peer is not reading: drop it rather than buffer forever. */
export const DEFAULT_MAX_QUEUED_BYTES = 64 << 20;

/**
 * The thin shell between a TCP byte stream and the index codec. Bun's `write()` takes what the kernel
 * accepts and keeps nothing, so the rest is queued here and flushed on `drain`.
 */
export class FramedPeer {
  private readonly decoder = new FrameDecoder();
  private readonly queue: Uint8Array[] = [];
  private queuedBytes = 0;
  private endWhenFlushed = false;
  closed = false;
  /** While true, bytes received are kept (one read at most: the shell pauses the socket) but not decoded. */
  private holding = false;
  /** Seals every frame sent once the handshake has set it (undefined: in clear). */
  private sealer: FrameSealer | undefined;
  /** Opens every frame received once the handshake has set it. */
  private opener: FrameOpener | undefined;
  /** Called after a flush leaves the queue empty: producers that stream wait for it. */
  onDrained: (() => void) | undefined;

  constructor(
    private readonly socket: ByteStream,
    private readonly handler: FramedPeerHandler,
    private readonly maxQueuedBytes = DEFAULT_MAX_QUEUED_BYTES,
  ) {
    this.decoder.maxFrameBytes = MAX_FRAME_BYTES + FRAME_OVERHEAD_BYTES;
  }

  /** Feed bytes from the socket's `data` callback. */
  receive(chunk: Uint8Array): void {
    if (this.closed) return;
    try {
      this.decoder.push(chunk);
      this.decodeWhileOpen();
    } catch (err) {
      if (!(err instanceof ProtocolError)) throw err;
      this.handler.onProtocolError(err);
    }
  }

  /** The largest frame taken from now on (the master's limit before authentication). */
  set maxFrameBytes(n: number) {
    this.decoder.maxFrameBytes = n + FRAME_OVERHEAD_BYTES;
  }

  /** Every frame sent from now on goes out sealed (the handshake decides when). */
  sealWith(sealer: FrameSealer): void {
    this.sealer = sealer;
  }

  /** Every frame received from now on must open, or the peer is closed as a protocol error. */
  openWith(opener: FrameOpener): void {
    this.opener = opener;
  }

  /** Stop decoding requests (the peer is not reading our answers); `resumeDecoding` carries on. */
  holdDecoding(): void {
    this.holding = true;
  }

  get decodingHeld(): boolean {
    return this.holding;
  }

  resumeDecoding(): void {
    if (!this.holding) return;
    this.holding = false;
    this.receive(new Uint8Array(0));
  }

  private decodeWhileOpen(): void {
    while (!this.closed && !this.holding) {
      const body = this.decoder.nextBody();
      if (!body) return;
      this.handler.onMessage(decodeBody(this.opener ? this.opener.open(body) : body));
    }
  }

  send(msg: IndexMessage): void {
    const frame = encodeMessage(msg);
    this.write(this.sealer ? this.sealer.seal(frame) : frame);
  }

  write(bytes: Uint8Array): void {
    if (this.closed || this.endWhenFlushed) return;
    if (this.queue.length > 0) {
      this.enqueue(bytes);
      return;
    }
    const written = Math.max(0, this.socket.write(bytes));
    if (written < bytes.byteLength) this.enqueue(bytes.subarray(written));
  }

  private enqueue(bytes: Uint8Array): void {
    this.queue.push(bytes);
    this.queuedBytes += bytes.byteLength;
    if (this.queuedBytes > this.maxQueuedBytes) this.destroy();
  }

  /** Call from the socket's `drain` callback. */
  flush(): void {
    while (this.queue.length > 0 && !this.closed) {
      const head = this.queue[0]!;
      const written = Math.max(0, this.socket.write(head));
      this.queuedBytes -= written;
      if (written < head.byteLength) {
        this.queue[0] = head.subarray(written);
        return;
      }
      this.queue.shift();
    }
    if (this.endWhenFlushed && !this.closed) this.destroy(true);
    else if (this.queue.length === 0 && !this.closed) this.onDrained?.();
  }

  get pendingBytes(): number {
    return this.queuedBytes;
  }

  /** Close once everything queued has gone out (so a final Error frame reaches the peer). */
  end(): void {
    if (this.closed) return;
    this.endWhenFlushed = true;
    if (this.queue.length === 0) this.destroy(true);
  }

  destroy(graceful = false): void {
    if (this.closed) return;
    this.closed = true;
    this.queue.length = 0;
    this.queuedBytes = 0;
    if (graceful) this.socket.end();
    else this.socket.terminate();
  }
}
