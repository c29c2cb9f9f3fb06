/**
 * NTP-style clock sync with the room server: each ping/pong gives four timestamps
 * (client send t0, server receive t1, server send t2, client receive t3). The estimate keeps
 * the last `window` samples and trusts the one with the lowest round trip (the least
 * queueing, so the most symmetric path).
 */

export interface ClockSample {
  /** Server clock minus client clock, ms. */
  offset: number;
  /** Round trip without the server's own processing time, ms. */
  rtt: number;
}

/** One sample from the four timestamps (ms). */
export function sample(t0: number, t1: number, t2: number, t3: number): ClockSample {
  return {
    offset: (t1 - t0 + (t2 - t3)) / 2,
    rtt: Math.max(0, t3 - t0 - (t2 - t1)),
  };
}

/** The running estimate of the server clock. */
export class ClockSync {
  private samples: ClockSample[] = [];

  constructor(private readonly window = 8) {}

  /** Adds a pong's timestamps; returns the new sample. */
  add(t0: number, t1: number, t2: number, t3: number): ClockSample {
    const s = sample(t0, t1, t2, t3);
    if (!Number.isFinite(s.offset) || !Number.isFinite(s.rtt)) return s;
    this.samples.push(s);
    if (this.samples.length > this.window) this.samples.shift();
    return s;
  }

  /** How many samples are held. */
  get count(): number {
    return this.samples.length;
  }

  /** The lowest-RTT sample of the window, if any. */
  best(): ClockSample | null {
    let best: ClockSample | null = null;
    for (const s of this.samples) if (!best || s.rtt < best.rtt) best = s;
    return best;
  }

  /** Server clock minus client clock, ms (0 before the first sample). */
  offset(): number {
    return this.best()?.offset ?? 0;
  }

  /** The best round-trip time, ms (0 before the first sample). */
  rtt(): number {
    return this.best()?.rtt ?? 0;
  }

  /** The server's time now, ms since the epoch. */
  serverNow(clientNow: number = Date.now()): number {
    return clientNow + this.offset();
  }
}
