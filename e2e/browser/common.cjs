// What every dashboard browser script shares: Debian's chromium through playwright-core, the
// step protocol with the Rust test (see e2e/src/browser.rs), screenshots and assertions.
'use strict';
const { chromium } = require('playwright-core');
const path = require('path');
const readline = require('readline');

const lines = readline.createInterface({ input: process.stdin });
const answers = [];
const waiting = [];
lines.on('line', (line) => { const next = waiting.shift(); if (next) next(line); else answers.push(line); });

/** Asks the test to do `name` and waits for its answer. */
function step(name) {
  console.log(`step ${name}`);
  return new Promise((resolve) => { const ready = answers.shift(); if (ready !== undefined) resolve(ready); else waiting.push(resolve); });
}

function ok(message) { console.log(`ok ${message}`); }

function check(condition, message) { if (!condition) throw new Error(`assertion failed: ${message}`); }

async function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'],
  });
}

async function newPage(browser) {
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  page.on('pageerror', (e) => { console.log(`pageerror ${e.message}`); process.exitCode = 1; });
  return page;
}

async function shot(page, name) {
  const file = path.join(process.env.SHOTS, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  ok(`screenshot ${file}`);
}

/** Waits until the page drew its view after `since` (Date.now() of the page). */
async function drawn(page, since = 0, timeout = 15000) {
  await page.waitForFunction((s) => Number(document.body.dataset.loaded || 0) > s, since, { timeout });
}

async function main(body) {
  const browser = await launch();
  try {
    await body(browser);
  } catch (e) {
    console.log(`failed ${e.stack || e}`);
    process.exitCode = 1;
  } finally {
    await browser.close();
    lines.close();
  }
}

module.exports = { step, ok, check, launch, newPage, shot, drawn, main };
