// In-process fan-out of change notifications ({spaceId, seq}) to connected devices (SSE). With several API nodes
// on PostgreSQL this becomes LISTEN/NOTIFY (DESIGN §8); the interface stays the same.
import { EventEmitter } from 'node:events';

export interface ChangeEvent {
  spaceId: string;
  seq: number;
}

export class EventBus {
  private readonly emitter = new EventEmitter();
  constructor() {
    this.emitter.setMaxListeners(0);
  }
  publish(event: ChangeEvent): void {
    this.emitter.emit('change', event);
  }
  subscribe(listener: (event: ChangeEvent) => void): () => void {
    this.emitter.on('change', listener);
    return () => this.emitter.off('change', listener);
  }
  /** Called on shutdown: event streams end so that the server can close. */
  onClose(listener: () => void): () => void {
    this.emitter.on('close', listener);
    return () => this.emitter.off('close', listener);
  }
  close(): void {
    this.emitter.emit('close');
  }
  listenerCount(): number {
    return this.emitter.listenerCount('change');
  }
}
