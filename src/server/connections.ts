import type { Socket } from 'node:net';
import type { Logger } from 'pino';

/**
 * [server] max_connections without letting idle sockets keep clients out. Node's own
 * server.maxConnections destroys every connection past the limit, so any local process,
 * token or none, could hold the limit's worth of silent sockets and shut everyone else out.
 * Here a connection past the limit closes the oldest one with no request in progress (one
 * that never sent a whole request head, or an idle keep-alive connection) and takes its place;
 * only when every connection is in the middle of a request is the new one closed.
 *
 * Connections are known by their remote address and port: the same for a TLS connection's
 * raw socket (counted when accepted, before any handshake) and for the TLS socket its
 * requests arrive on, with no reach into Node's internals.
 */
export class ConnectionSlots {
  /** Oldest first (a Map keeps insertion order): its socket and how many requests are in progress. */
  private readonly open = new Map<string, { socket: Socket; requests: number }>();

  constructor(
    private readonly max: number,
    private readonly log: Logger,
  ) {}

  /** A connection just accepted: takes a slot, evicting the oldest idle one when none is free. */
  accept(socket: Socket): void {
    const key = keyOf(socket);
    if (key === undefined) return; // already gone
    if (this.open.size >= this.max && !this.evictIdle()) {
      this.log.warn({ maxConnections: this.max }, 'refused a connection: every one of [server] max_connections has a request in progress');
      socket.destroy();
      return;
    }
    const slot = { socket, requests: 0 };
    this.open.set(key, slot);
    socket.once('close', () => {
      if (this.open.get(key) === slot) this.open.delete(key);
    });
  }

  /** A request began on `socket` (its connection is not evicted until it ends). */
  begin(socket: Socket): void {
    const slot = this.slotOf(socket);
    if (slot !== undefined) slot.requests++;
  }

  /** A request on `socket` ended (its answer sent, or the connection gone). */
  end(socket: Socket): void {
    const slot = this.slotOf(socket);
    if (slot !== undefined && slot.requests > 0) slot.requests--;
  }

  private slotOf(socket: Socket): { socket: Socket; requests: number } | undefined {
    const key = keyOf(socket);
    return key === undefined ? undefined : this.open.get(key);
  }

  private evictIdle(): boolean {
    for (const [key, slot] of this.open) {
      if (slot.requests > 0) continue;
      this.open.delete(key);
      slot.socket.destroy();
      return true;
    }
    return false;
  }
}

function keyOf(socket: Socket): string | undefined {
  const { remoteAddress, remotePort } = socket;
  return remoteAddress === undefined || remotePort === undefined ? undefined : `${remoteAddress}|${remotePort}`;
}
