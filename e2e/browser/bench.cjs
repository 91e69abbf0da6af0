// The dashboard's benchmark in the browser (e2e/src/bin/dashboard-bench.rs): prints
// `result <name> <value>` lines. Env: BASE.
'use strict';
const { step, launch } = require('./common.cjs');

const { BASE } = process.env;
const ROUNDS = 5;

function result(name, value) { console.log(`result ${name} ${value}`); }
function summary(values) {
  const sorted = [...values].sort((a, b) => a - b);
  return `median ${sorted[Math.floor(sorted.length / 2)].toFixed(0)}, worst ${sorted[sorted.length - 1].toFixed(0)} (n=${sorted.length})`;
}

async function page(browser) {
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  const p = await context.newPage();
  await p.addInitScript(() => {
    window.longest = 0;
    new PerformanceObserver((list) => { for (const e of list.getEntries()) window.longest = Math.max(window.longest, e.duration); })
      .observe({ type: 'longtask', buffered: true });
  });
  return p;
}

/** Milliseconds from navigation start to the view drawn. */
async function paint(p, path) {
  await p.goto(`${BASE}${path}`);
  await p.waitForFunction(() => document.body.dataset.loaded, null, { timeout: 30000 });
  return p.evaluate(() => Number(document.body.dataset.loaded) - performance.timeOrigin);
}

/** Milliseconds from `act` to the view drawn again. */
async function redraw(p, act) {
  const before = await p.evaluate(() => Number(document.body.dataset.loaded));
  const start = await p.evaluate(() => Date.now());
  await act();
  await p.waitForFunction((b) => Number(document.body.dataset.loaded) > b, before, { timeout: 30000 });
  return (await p.evaluate(() => Number(document.body.dataset.loaded))) - start;
}

(async () => {
  const browser = await launch();
  try {
    const problems = [], checks = [], filters = [], sorts = [];
    for (let i = 0; i < ROUNDS; i++) {
      const p = await page(browser);
      problems.push(await paint(p, '/ui/'));
      checks.push(await paint(p, '/ui/checks'));
      filters.push(await redraw(p, () => p.fill('#f-q', `host-0${i}1`)));
      sorts.push(await redraw(p, () => p.click('th[data-sort="host"]')));
      await p.context().close();
    }
    result('first_paint_problems_ms', summary(problems));
    result('first_paint_all_checks_ms', summary(checks));
    result('filter_applied_ms', summary(filters));
    result('sort_applied_ms', summary(sorts));

    const bursts = [], frames = [];
    for (let i = 0; i < ROUNDS; i++) {
      const p = await page(browser);
      await paint(p, '/ui/');
      await p.waitForSelector('#live.on', { timeout: 10000 });
      const before = await p.evaluate(() => Number(document.querySelector('[data-count="CRITICAL"]').textContent.split(' ')[1]));
      await p.evaluate(() => { window.longest = 0; });
      const start = await p.evaluate(() => Date.now());
      await step('burst');
      await p.waitForFunction((b) => Number(document.querySelector('[data-count="CRITICAL"]').textContent.split(' ')[1]) >= b + 1000, before, { timeout: 30000, polling: 20 });
      bursts.push((await p.evaluate(() => Date.now())) - start);
      frames.push(await p.evaluate(() => window.longest));
      await step('reset');
      await p.context().close();
    }
    result('burst_1000_shown_ms', summary(bursts));
    result('burst_longest_frame_ms', summary(frames));

    const [alone, aloneRss] = (await step('window')).split(' ').map(Number);
    const pages = [];
    for (let i = 0; i < 20; i++) {
      const p = await page(browser);
      await paint(p, '/ui/');
      pages.push(p);
    }
    const [open, openRss] = (await step('window')).split(' ').map(Number);
    result('masters_cpu_20s_no_pages_s', alone.toFixed(2));
    result('masters_cpu_20s_20_pages_s', open.toFixed(2));
    result('masters_rss_no_pages_mib', aloneRss.toFixed(0));
    result('masters_rss_20_pages_mib', openRss.toFixed(0));
    for (const p of pages) await p.context().close();
  } catch (e) {
    console.log(`failed ${e.stack || e}`);
    process.exitCode = 1;
  } finally {
    await browser.close();
    process.exit();
  }
})();
