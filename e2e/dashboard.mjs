// Lockgate's dashboard in headless Chromium, as the seed's users would use it: export
// the 229 customers, process, see the button disabled; generate customers, break one
// (NULL FirstName in the source), see the export fail on that row and nothing land;
// fix it, export again; browse, download a zip, upload it. A screenshot of each page
// goes to $OUT. Run by e2e/run.sh, which starts the server.
import { chromium } from "playwright-core";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";

const { BASE, DEMO_DIR, LOCKGATE, OUT } = process.env;
assert.ok(BASE && DEMO_DIR && LOCKGATE && OUT, "run through e2e/run.sh (BASE, DEMO_DIR, LOCKGATE, OUT)");

const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
  ],
  // playwright gives every launch a fresh profile of its own.
});
const context = await browser.newContext({ acceptDownloads: true, viewport: { width: 1280, height: 900 } });
const page = await context.newPage();
page.setDefaultTimeout(30_000);
const problems = [];
page.on("pageerror", (e) => problems.push(`script error: ${e.message}`));
page.on("console", (m) => { if (m.type() === "error") problems.push(`console: ${m.text()}`); });

let steps = 0;
let shot = 0;
async function snap(name) {
  shot += 1;
  await page.screenshot({ path: join(OUT, `${String(shot).padStart(2, "0")}-${name}.png`), fullPage: true });
}
async function step(name, body) {
  process.stdout.write(`e2e: ${name} ... `);
  await body();
  steps += 1;
  console.log("ok");
}
async function go(path) {
  const resp = await page.goto(BASE + path, { waitUntil: "load" });
  assert.equal(resp.status(), 200, `GET ${path} answered ${resp.status()}`);
}
function sql(statement) {
  execFileSync(LOCKGATE, ["exec", "--db", `sqlite://${DEMO_DIR}/source.db`, "--sql", statement], { stdio: "pipe" });
}
// A job page follows its job over server-sent events and reloads itself when it ends.
async function jobResult() {
  await page.waitForURL(/\/jobs\/\d+$/);
  await page.waitForFunction(() => document.querySelector("#job")?.dataset.status !== "running", null, {
    timeout: 60_000,
  });
  return {
    status: (await page.textContent("#job-status")).trim(),
    message: (await page.textContent("#job-message")).trim(),
  };
}
async function available() {
  return Number(await page.getAttribute(".available", "data-available"));
}
async function exportAndProcess() {
  await go("/exports");
  await page.click("button.export-button");
  const created = await jobResult();
  assert.equal(created.status, "succeeded", created.message);
  await go("/exports");
  await page.click("#process");
  // A job that ran a failed export is itself "failed"; the callers say what they expect.
  const processed = await jobResult();
  return { created, processed };
}
async function rowCount(conn, table) {
  await go(`/tables?conn=${conn}&table=${table}`);
  return (await page.textContent("#row-count")).trim();
}

await step("overview", async () => {
  await go("/");
  assert.equal((await page.textContent("h1")).trim(), "Overview");
  assert.ok(await page.isVisible("text=Connections"));
  await snap("overview");
});

await step("229 customers can be exported", async () => {
  await go("/exports");
  assert.equal(await available(), 229);
  assert.ok(await page.isEnabled("button.export-button"), "the Export button is enabled");
  await snap("exports-before");
});

await step("export them, process, the button is then disabled", async () => {
  const { created, processed } = await exportAndProcess();
  assert.match(created.message, /created with 229 rows/);
  await snap("process-result");
  assert.equal(processed.status, "succeeded", processed.message);
  assert.match(processed.message, /1 completed, 0 failed/);
  assert.ok(await page.isVisible("table >> text=completed"), "the job shows the export completed");
  await go("/exports");
  assert.equal(await available(), 0);
  assert.ok(await page.isDisabled("button.export-button"), "the Export button is disabled");
  const first = page.locator("table:has(caption:text('Exports of customers')) tbody tr").first();
  assert.match(await first.textContent(), /completed/);
  await snap("exports-after");
  assert.match(await rowCount("destination", "customers"), /^1336 rows/);
});

let broken;
await step("generate 10 customers (the form refuses 0 in the page)", async () => {
  await go("/exports");
  await page.fill("#n", "0");
  await page.click("form[action=\"/demo/generate\"] button");
  assert.ok(await page.$eval("#n", (el) => !el.checkValidity()), "0 is refused by the page");
  await page.fill("#n", "10");
  await page.click("form[action=\"/demo/generate\"] button");
  const r = await jobResult();
  assert.equal(r.status, "succeeded", r.message);
  const m = r.message.match(/added 10 customers \(CustomerID (\d+) to (\d+)\)/);
  assert.ok(m, r.message);
  broken = Number(m[2]);
  await snap("generated");
});

let failedExport;
await step("a NULL FirstName fails the export on that row, nothing lands", async () => {
  sql(`UPDATE customers SET FirstName = NULL WHERE CustomerID = ${broken}`);
  const { processed } = await exportAndProcess();
  assert.equal(processed.status, "failed", processed.message);
  assert.match(processed.message, /0 completed, 1 failed/);
  const link = page.locator("table tbody tr >> text=failed").locator("xpath=ancestor::tr//a").first();
  failedExport = (await link.textContent()).trim();
  await link.click();
  await page.waitForURL(/\/exports\/customers\/\d+$/);
  const row = page.locator("table:has(caption:text('Failed rows')) tbody tr").first();
  const text = await row.textContent();
  assert.ok(text.includes(String(broken)), `the failed row is ${broken}: ${text}`);
  assert.match(text, /FirstName|NULL|null/i);
  await snap("failed-export");
  assert.match(await rowCount("destination", "customers"), /^1336 rows/, "nothing new in the destination");
});

await step("after the fix a new export completes; the row's history shows both", async () => {
  sql(`UPDATE customers SET FirstName = 'Fixed' WHERE CustomerID = ${broken}`);
  const { processed } = await exportAndProcess();
  assert.equal(processed.status, "succeeded", processed.message);
  assert.match(processed.message, /1 completed, 0 failed/);
  assert.match(await rowCount("destination", "customers"), /^1346 rows/);
  await snap("destination-customers");
  await go(`/exports/customers/history?key=${broken}`);
  const body = await page.textContent("main");
  assert.match(body, /failed: /, "the failed attempt with its error");
  assert.match(body, /exported/, "the completed attempt");
  assert.ok(body.includes(failedExport));
  await snap("row-history");
});

await step("tables are sorted and searched on the server", async () => {
  await go("/tables?conn=source&table=customers");
  await page.click("th >> text=LastName");
  await page.waitForURL(/sort=LastName/);
  assert.equal(await page.getAttribute("th[aria-sort=ascending] a", "title"), "sort by LastName");
  await page.fill("#q", "smith");
  await page.press("#q", "Enter");
  await page.waitForURL(/q=smith/);
  const rows = await page.$$eval("#browse tbody tr", (trs) => trs.map((tr) => tr.textContent.toLowerCase()));
  assert.ok(rows.length > 0 && rows.every((r) => r.includes("smith")), "every row found holds smith");
  await snap("tables-search");
  await page.click("a[rel=next]").catch(() => {});
});

await step("migrations page", async () => {
  await go("/migrations");
  assert.equal((await page.textContent("h1")).trim(), "Migrations");
  await snap("migrations");
});

let zipPath;
await step("download a zip of the customers", async () => {
  await go("/data");
  await page.check("input[name=table][value=customers]");
  const [download] = await Promise.all([page.waitForEvent("download"), page.click("#download")]);
  zipPath = join(OUT, "customers.zip");
  await download.saveAs(zipPath);
  const bytes = readFileSync(zipPath);
  assert.ok(bytes.length > 1000 && bytes.subarray(0, 2).toString() === "PK", "a zip");
  await snap("data");
});

await step("upload the zip: its version is migrated", async () => {
  await go("/data");
  await page.setInputFiles("#zip", zipPath);
  await page.click("#upload");
  const r = await jobResult();
  assert.equal(r.status, "succeeded", r.message);
  assert.match(r.message, /migrated 1\.0\.0/);
  assert.ok(await page.isVisible("table:has(caption:text('Files')) >> text=customers"), "the per-file log");
  await snap("upload-result");
  await go("/migrations");
  assert.match(await page.textContent("main"), /version\s+1\.0\.0/);
  await snap("migrations-after");
});

await step("the seed's /process and /uploadzip pages", async () => {
  await go("/process");
  await snap("process-page");
  await go("/uploadzip");
  await snap("uploadzip-page");
});

await step("a phone-sized screen", async () => {
  await page.setViewportSize({ width: 390, height: 844 });
  await go("/exports");
  await snap("exports-phone");
});

await browser.close();
assert.deepEqual(problems, [], "no script errors in the pages");
console.log(`e2e: ${steps} steps passed, screenshots in ${OUT}`);
