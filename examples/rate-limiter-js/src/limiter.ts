// A token-bucket rate limiter, one object per key (a user, an IP): `take()` spends a token if
// one is left. Other objects call it through a stub (examples/room-js binds it as LIMITER).
// Capacity and refill come from the class's env: CAPACITY tokens, one more every REFILL_MS.
import { DurableObject, type DurableObjectState } from "cloudflare:workers";

/** The outcome of `take`. */
export interface Decision {
  allowed: boolean;
  /** Tokens left after this decision. */
  remaining: number;
  /** When refused: milliseconds until a token is back. */
  retryAfterMs: number;
}

interface Bucket {
  tokens: number;
  updatedAt: number;
}

export class RateLimiter extends DurableObject {
  private capacity: number;
  private refillMs: number;

  constructor(ctx: DurableObjectState, env: Record<string, string>) {
    super(ctx, env);
    this.capacity = Number(env.CAPACITY ?? 5);
    this.refillMs = Number(env.REFILL_MS ?? 1000);
  }

  /** Spends `cost` tokens (default 1) if the bucket holds that many. */
  async take(cost: number = 1): Promise<Decision> {
    if (!(cost > 0) || cost > this.capacity) throw new RangeError(`cost must be in (0, ${this.capacity}]`);
    const bucket = await this.refilled();
    const allowed = bucket.tokens >= cost;
    if (allowed) bucket.tokens -= cost;
    await this.ctx.storage.put("bucket", bucket);
    const retryAfterMs = allowed ? 0 : Math.ceil((cost - bucket.tokens) * this.refillMs);
    return { allowed, remaining: Math.floor(bucket.tokens), retryAfterMs };
  }

  /** Tokens available now. */
  async remaining(): Promise<number> {
    return Math.floor((await this.refilled()).tokens);
  }

  /** Fills the bucket again. */
  async reset(): Promise<void> {
    await this.ctx.storage.delete("bucket");
  }

  private async refilled(): Promise<Bucket> {
    const now = Date.now();
    const bucket = (await this.ctx.storage.get<Bucket>("bucket")) ?? { tokens: this.capacity, updatedAt: now };
    bucket.tokens = Math.min(this.capacity, bucket.tokens + (now - bucket.updatedAt) / this.refillMs);
    bucket.updatedAt = now;
    return bucket;
  }
}
