// Two people chat in examples/chat-worker's page, in headless Chromium, as they would by hand:
//
//   node tests/browser/chat.mjs http://127.0.0.1:8787
//
// alice and bob (two browser contexts: two users) join the same room; each sees the other
// arrive; alice's message reaches both, so does bob's reply; bob reloads the page and finds the
// conversation again (the room's stored history), while alice sees him leave and come back; the
// HTTP history route answers the same; alice leaves and bob sees it. Exits 0, or 1 with the step
// that failed and why. Uses Debian's /usr/bin/chromium (or $CHROMIUM); `SCREENSHOT=<file.png>`
// saves bob's page at the end.
import { chromium } from "playwright-core";

const base = process.argv[2];
if (!base || !/^https?:\/\//.test(base)) {
  console.error("usage: node tests/browser/chat.mjs <base URL, e.g. http://127.0.0.1:8787>");
  process.exit(2);
}
const executablePath = process.env.CHROMIUM ?? "/usr/bin/chromium";
const room = `room-${process.pid}`;
const WAIT = { timeout: 20_000 };

let current = "starting Chromium";
async function step(name, action) {
  current = name;
  await action();
  console.log(`ok: ${name}`);
}

/** The texts of a page's chat lines of `kind` ("message" or "notice"), in order. */
function lines(page, kind) {
  return page.locator(`#messages li.${kind}`).allTextContents();
}

/** Waits until `page` shows a chat line of `kind` with exactly `text`. */
async function sees(page, kind, text) {
  await page
    .locator(`#messages li.${kind}`)
    .filter({ hasText: new RegExp(`^${text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}$`) })
    .first()
    .waitFor(WAIT);
}

async function join(page, name) {
  await page.goto(base, WAIT);
  await page.fill("#room", room);
  await page.fill("#name", name);
  await page.click("#join");
  await page.locator("body[data-state=joined]").waitFor(WAIT);
}

async function say(page, text) {
  await page.fill("#text", text);
  await page.press("#text", "Enter");
}

function assertEqual(actual, expected, what) {
  if (JSON.stringify(actual) !== JSON.stringify(expected)) {
    throw new Error(`${what}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`);
  }
}

let browser;
const problems = [];
try {
  // a fresh profile in a temporary directory each run (playwright's launch makes one)
  browser = await chromium.launch({
    executablePath,
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  const alice = await (await browser.newContext()).newPage();
  const bob = await (await browser.newContext()).newPage();
  for (const [who, page] of [["alice", alice], ["bob", bob]]) {
    page.on("pageerror", (e) => problems.push(`${who}'s page threw: ${e.message}`));
  }

  await step("the page loads", async () => {
    const response = await alice.goto(base, WAIT);
    if (!response.ok()) throw new Error(`GET / answered ${response.status()}`);
    assertEqual(await alice.title(), "Chat", "the page's title");
  });
  await step("alice joins", async () => {
    await join(alice, "alice");
    await sees(alice, "notice", "alice joined");
  });
  await step("bob joins, and alice sees him arrive", async () => {
    await join(bob, "bob");
    await sees(bob, "notice", "bob joined");
    await sees(alice, "notice", "bob joined");
    await alice.locator("#online", { hasText: "alice, bob" }).waitFor(WAIT);
  });
  await step("alice's message reaches both", async () => {
    await say(alice, "hello from alice");
    await sees(alice, "message", "alice: hello from alice");
    await sees(bob, "message", "alice: hello from alice");
  });
  await step("bob's reply reaches both", async () => {
    await say(bob, "hi alice");
    await sees(bob, "message", "bob: hi alice");
    await sees(alice, "message", "bob: hi alice");
  });
  await step("bob reloads and finds the conversation; alice sees him leave and return", async () => {
    await bob.reload(WAIT);
    await bob.locator("body[data-state=joined]").waitFor(WAIT);
    await sees(bob, "message", "bob: hi alice");
    assertEqual(await lines(bob, "message"), ["alice: hello from alice", "bob: hi alice"], "bob's messages after the reload");
    await sees(alice, "notice", "bob left");
    await alice.waitForFunction(
      () => [...document.querySelectorAll("#messages li.notice")].filter((li) => li.textContent === "bob joined").length === 2,
      null,
      WAIT,
    );
    assertEqual(await lines(alice, "message"), ["alice: hello from alice", "bob: hi alice"], "alice's messages");
  });
  await step("the history route answers the same", async () => {
    const history = await bob.evaluate(async (room) => {
      const response = await fetch(`/api/rooms/${room}/history`);
      return { status: response.status, body: await response.json() };
    }, room);
    assertEqual(history.status, 200, "GET /api/rooms/<room>/history");
    assertEqual(
      history.body.messages.map((m) => `${m.name}: ${m.text}`),
      ["alice: hello from alice", "bob: hi alice"],
      "the history",
    );
  });
  await step("alice leaves, and bob sees it", async () => {
    await alice.close();
    await sees(bob, "notice", "alice left");
    await bob.locator("#online", { hasText: /^bob$/ }).waitFor(WAIT);
  });
  if (process.env.SCREENSHOT) await bob.screenshot({ path: process.env.SCREENSHOT });
  if (problems.length > 0) {
    current = "the pages ran without errors";
    throw new Error(problems.join("; "));
  }
  console.log("chat.mjs: two browsers chatted through the app");
} catch (e) {
  console.error(`chat.mjs: FAILED at "${current}": ${e.message}`);
  if (problems.length > 0) console.error(problems.join("\n"));
  process.exitCode = 1;
} finally {
  await browser?.close();
}
