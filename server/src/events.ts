// Fan-out of change notifications ({spaceId, seq}) to connected devices (SSE), in process. On PostgreSQL what a node
// publishes also goes to the other nodes (events-pg.ts, LISTEN/NOTIFY), and `endSessions` and `membershipChanged`
// travel the same way, since the stream to end may be held by another node; the interface stays the same.
import { EventEmitter } from 'node:events';

export interface ChangeEvent {
  spaceId: string;
  seq: number;
  /** Not a commit: an admin asked the space's managers' clients to complete a removal (docs/admin.md "Offboarding"). */
  removalPending?: true;
}

/** Whose session an open event stream belongs to. */
export interface StreamOwner {
  userId: string;
  deviceId: string;
}

/** What the bus may tell an open stream. */
export interface StreamHandlers {
  change(event: ChangeEvent): void;
  /** The stream must end now (its session ended, its user's memberships changed, or the server is stopping). */
  end(): void;
}

interface OpenStream extends StreamOwner, StreamHandlers {}

/** What one node tells the others (events-pg.ts): a change, sessions that ended, a membership that changed. */
export type BusMessage =
  | { t: 'change'; spaceId: string; seq: number }
  | { t: 'end'; userId?: string; deviceId?: string }
  | { t: 'member'; spaceId: string; userId: string }
  | { t: 'removal'; spaceId: string };

export class EventBus {
  private readonly emitter = new EventEmitter();
  private readonly streams = new Set<OpenStream>();
  private relay: ((message: BusMessage) => void) | undefined;
  constructor() {
    this.emitter.setMaxListeners(0);
  }
  /** Sends what this bus publishes or ends to the other nodes as well (events-pg.ts); undefined stops that. */
  relayTo(send: ((message: BusMessage) => void) | undefined): void {
    this.relay = send;
  }
  /** A message from another node: acted on here, not relayed again. */
  receive(message: BusMessage): void {
    if (message.t === 'change') this.changed({ spaceId: message.spaceId, seq: message.seq });
    else if (message.t === 'removal') this.changed({ spaceId: message.spaceId, seq: 0, removalPending: true });
    else if (message.t === 'end') this.endLocal(message);
    else this.endWhere((s) => s.userId === message.userId);
  }
  publish(event: ChangeEvent): void {
    this.changed(event);
    this.relay?.({ t: 'change', spaceId: event.spaceId, seq: event.seq });
  }
  private changed(event: ChangeEvent): void {
    this.emitter.emit('change', event);
    for (const s of this.streams) s.change(event);
  }
  /** Tells the members' streams of a space that a removal waits for a manager's client (after the commit). */
  removalPending(spaceId: string): void {
    this.changed({ spaceId, seq: 0, removalPending: true });
    this.relay?.({ t: 'removal', spaceId });
  }
  subscribe(listener: (event: ChangeEvent) => void): () => void {
    this.emitter.on('change', listener);
    return () => this.emitter.off('change', listener);
  }
  /**
   * Registers an event stream of a session, so that revoking the session or changing its user's memberships can end
   * it. Register before reading the session's state and memberships: a change committed after that read is then
   * sure to find the stream here. Returns the function that unregisters it.
   */
  openStream(owner: StreamOwner, handlers: StreamHandlers): () => void {
    const stream: OpenStream = { userId: owner.userId, deviceId: owner.deviceId, change: handlers.change, end: handlers.end };
    this.streams.add(stream);
    return () => {
      this.streams.delete(stream);
    };
  }
  /**
   * Ends at once the streams of a device (its session was revoked: device revocation, logout) or of every device of a
   * user (password reset). Call it after the revocation committed. With neither, nothing ends.
   */
  endSessions(which: { userId?: string; deviceId?: string }): number {
    if (which.userId === undefined && which.deviceId === undefined) return 0;
    this.relay?.({ t: 'end', ...(which.userId !== undefined ? { userId: which.userId } : {}), ...(which.deviceId !== undefined ? { deviceId: which.deviceId } : {}) });
    return this.endLocal(which);
  }
  private endLocal(which: { userId?: string; deviceId?: string }): number {
    if (which.userId === undefined && which.deviceId === undefined) return 0;
    return this.endWhere((s) => (which.userId === undefined || s.userId === which.userId) && (which.deviceId === undefined || s.deviceId === which.deviceId));
  }
  /**
   * Ends every open stream: the relay between nodes lost messages (events-pg.ts), so their clients reconnect and read
   * their memberships and heads afresh.
   */
  endAll(): number {
    return this.endWhere(() => true);
  }
  /**
   * A user lost (or changed) their membership of a space: their streams end, and the client's reconnect reads the
   * memberships afresh, so no later event of that space reaches them. Call it after the change committed.
   */
  membershipChanged(spaceId: string, userId: string): number {
    // Every stream of the user ends: simpler than filtering and cannot race with a membership reload.
    this.relay?.({ t: 'member', spaceId, userId });
    return this.endWhere((s) => s.userId === userId);
  }
  private endWhere(match: (s: OpenStream) => boolean): number {
    let n = 0;
    for (const s of [...this.streams]) {
      if (!match(s)) continue;
      this.streams.delete(s);
      s.end();
      n++;
    }
    return n;
  }
  /** Called on shutdown: event streams end so that the server can close. */
  onClose(listener: () => void): () => void {
    this.emitter.on('close', listener);
    return () => this.emitter.off('close', listener);
  }
  close(): void {
    this.emitter.emit('close');
    this.endWhere(() => true);
  }
  /** Open event streams and plain subscribers (for the SSE client gauge and tests). */
  listenerCount(): number {
    return this.emitter.listenerCount('change') + this.streams.size;
  }
}
