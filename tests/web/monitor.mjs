// Opens the monitor page in Debian's headless Chromium and reports what it
// shows, for tests/bridge_monitor.rs:
//   node monitor.mjs URL SCREENSHOT.png
// prints one JSON object: the page's values before and after they moved,
// every URL the page requested, and any page error.
import { chromium } from "playwright-core";

const [url, shot] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
});

function snapshot() {
  const params = {};
  for (const row of document.querySelectorAll(".param[data-value]")) {
    params[row.dataset.path] = {
      value: Number(row.dataset.value),
      text: row.querySelector(".value").textContent,
      actor: row.dataset.actor,
    };
  }
  return {
    params,
    groups: [...document.querySelectorAll(".group")].map((g) => g.dataset.group),
    buses: [...document.querySelectorAll(".bus")].map((b) => b.dataset.value ?? null),
    meters: [...document.querySelectorAll(".meter")].map((m) => m.dataset.source),
    events: [...document.querySelectorAll("#events li:not(.empty)")].map((li) => li.textContent),
    socket: document.getElementById("socket").textContent,
    link: document.getElementById("link").textContent,
  };
}

try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 860 } });
  const requests = [];
  const errors = [];
  page.on("request", (r) => requests.push(r.url()));
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });
  await page.goto(url);
  const wait = { timeout: 60000 };
  await page.waitForFunction(
    () => document.getElementById("socket").textContent === "connected"
      && document.getElementById("link").textContent === "connected"
      && document.querySelectorAll(".param[data-value]").length >= 24
      && document.querySelectorAll(".bus[data-value]").length === 16,
    null, wait);
  const before = await page.evaluate(snapshot);
  // the values move: a bus, a parameter, a meter; events come in
  await page.waitForFunction((b) => {
    const now = [...document.querySelectorAll(".bus")].map((x) => x.dataset.value);
    const busMoved = now.some((v, i) => v !== b.buses[i]);
    const paramMoved = [...document.querySelectorAll(".param[data-value]")]
      .some((r) => b.params[r.dataset.path] && Number(r.dataset.value) !== b.params[r.dataset.path].value);
    const events = document.querySelectorAll("#events li:not(.empty)").length > 0;
    const meters = document.querySelectorAll(".meter").length >= 5;
    return busMoved && paramMoved && events && meters;
  }, before, wait);
  const after = await page.evaluate(snapshot);
  await page.screenshot({ path: shot });
  console.log(JSON.stringify({ before, after, requests, errors }));
} finally {
  await browser.close();
}
