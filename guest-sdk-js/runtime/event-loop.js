// The object's own event loop between events, as on Cloudflare: a timer (`setTimeout`,
// `setInterval`) that is still pending when an event ends runs when its time comes, and an
// outbound `fetch` the event did not await goes on when its answer arrives, while the object is
// live, not at the next event.
//
// The engine runs timers and I/O only while an export of the component runs. So the runtime
// keeps the deadline of every pending timer, tells the host the earliest one at the end of each
// event (`event-loop.wake-after`, only when it changed: a host call costs), and the host then
// calls `event-loop-handler.run` (`runDue`), which lets the due timers run. While a `fetch` (or
// the reading of a fetched body) is in flight, the host is asked to look again soon — after
// 1 ms, then twice as long each time up to 64 ms — and each look gives the engine a few turns,
// in which what arrived meanwhile goes on. Timers and requests live and die with the instance:
// use alarms for what must happen.

import { wakeAfter } from "wasmdo:object/event-loop@0.1.0";

const platform = {
  setTimeout: globalThis.setTimeout,
  clearTimeout: globalThis.clearTimeout,
  setInterval: globalThis.setInterval,
  clearInterval: globalThis.clearInterval,
};

const now = typeof globalThis.performance?.now === "function" ? () => globalThis.performance.now() : () => Date.now();

/** Pending timers: the engine's timer id → when it is due (on `now`'s clock). */
const pending = new Map();

/** The deadline the host was last told (`null`: none; `undefined`: unknown, tell it again). */
let reported = null;

/** Outbound I/O started and not settled yet: `fetch`es, and reads of fetched bodies. */
let inflight = 0;

/** While I/O is in flight: how soon the host is asked to look again (ms, doubling). */
let pollMs = 1;
const MAX_POLL_MS = 64;

/** Turns the engine gets in one look at I/O in flight, with no timer due. */
const IO_TURNS = 4;

/** Counts `promise` as I/O in flight until it settles; returns it. */
export function trackIo(promise) {
  inflight += 1;
  pollMs = 1;
  const settled = () => {
    inflight -= 1;
  };
  promise.then(settled, settled);
  return promise;
}

/** The largest delay timers take (2^31 - 1 ms, as in browsers and workerd). */
const MAX_DELAY = 2147483647;

function delayOf(delay) {
  const ms = Number(delay);
  return Number.isFinite(ms) && ms > 0 ? Math.min(Math.floor(ms), MAX_DELAY) : 0;
}

/** Runs a timer's callback; what it throws is logged, as an uncaught error is on Cloudflare. */
function fire(callback, args) {
  try {
    const result = callback(...args);
    if (result && typeof result.then === "function") {
      result.then(undefined, (e) => console.error("Uncaught (in promise) from a timer:", e));
    }
  } catch (e) {
    console.error("Uncaught error in a timer:", e);
  }
}

/** Replaces the engine's timer functions with ones whose deadlines the host is told. */
export function installTimers() {
  globalThis.setTimeout = function setTimeout(callback, delay, ...args) {
    if (typeof callback !== "function") return platform.setTimeout(callback, delay, ...args);
    const ms = delayOf(delay);
    const id = platform.setTimeout(() => {
      pending.delete(id);
      fire(callback, args);
    }, ms);
    pending.set(id, now() + ms);
    return id;
  };
  globalThis.setInterval = function setInterval(callback, delay, ...args) {
    if (typeof callback !== "function") return platform.setInterval(callback, delay, ...args);
    const ms = delayOf(delay);
    const id = platform.setInterval(() => {
      pending.set(id, now() + ms);
      fire(callback, args);
    }, ms);
    pending.set(id, now() + ms);
    return id;
  };
  globalThis.clearTimeout = function clearTimeout(id) {
    pending.delete(id);
    platform.clearTimeout(id);
  };
  globalThis.clearInterval = function clearInterval(id) {
    pending.delete(id);
    platform.clearInterval(id);
  };
}

/** The earliest deadline of a pending timer, or `null`. */
function nextDeadline() {
  let next = null;
  for (const at of pending.values()) if (next === null || at < next) next = at;
  return next;
}

/** Tells the host when the earliest pending timer is due (or, with I/O in flight, when to look
 * at it again), if that changed. Ends every event. */
export function reportWake() {
  if (pending.size === 0 && inflight === 0 && reported === null) return;
  let next = nextDeadline();
  if (inflight > 0) {
    const look = now() + pollMs;
    if (next === null || look < next) next = look;
    pollMs = Math.min(pollMs * 2, MAX_POLL_MS);
  }
  if (next === reported) return;
  reported = next;
  wakeAfter(next === null ? undefined : BigInt(Math.max(1, Math.ceil(next - now()))));
}

/** Whether a pending timer's time has come. */
function due() {
  const t = now();
  for (const at of pending.values()) if (at <= t) return true;
  return false;
}

/**
 * `event-loop-handler.run`: lets the timers whose time has come run, and what they start until
 * it waits for time again, and what I/O in flight has brought meanwhile (a zero-delay timer of
 * the engine's own gives the loop the turns); then tells the host what is left. The host forgot
 * its wake-up when it ran it: tell it again.
 */
export async function runDue() {
  reported = undefined;
  let io = 0;
  for (let turns = 0; turns < 64; turns++) {
    if (!due() && (inflight === 0 || io++ >= IO_TURNS)) break;
    await new Promise((resolve) => platform.setTimeout(resolve, 0));
  }
}
