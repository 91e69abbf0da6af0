// The dashboard as a person uses it, in standalone mode: a check turning CRITICAL appears on
// the problems view without a reload, the all-checks filters and sorting work and live in the
// URL, the business process changes colour as its element runs and completes, and every view
// is drawn (a screenshot of each). Env: BASE, SHOTS, HOST, CHECK (namespace/ruleSet/rule of
// the TCP check the test breaks), PROCESS (namespace/name), ELEMENT.
'use strict';
const { step, ok, check, newPage, shot, drawn, main } = require('./common.cjs');

const { BASE, HOST, CHECK, PROCESS, ELEMENT } = process.env;
const row = (state) => `tr[data-host="${HOST}"][data-check="${CHECK}"][data-state="${state}"]`;

main(async (browser) => {
  const page = await newPage(browser);
  await page.goto(`${BASE}/`);
  check(page.url().endsWith('/ui/'), `/ redirects to the problems view, not ${page.url()}`);
  await drawn(page);
  await page.waitForSelector('#live.on', { timeout: 10000 });
  check(!(await page.$(row('CRITICAL'))), 'the check starts OK, so it is not among the problems');
  await page.evaluate(() => { window.notReloaded = true; });
  ok('problems view drawn, live');

  await step('critical');
  await page.waitForSelector(row('CRITICAL'), { timeout: 30000 });
  const shownAt = Date.now();
  check(await page.evaluate(() => window.notReloaded === true), 'the page was not reloaded');
  const detail = await page.evaluate(async ([host, c]) => (await fetch(`/ui/api/check?host=${encodeURIComponent(host)}&check=${encodeURIComponent(c)}`)).json(), [HOST, CHECK]);
  check(detail.state === 'CRITICAL', `the API says CRITICAL: ${JSON.stringify(detail.state)}`);
  ok(`CRITICAL shown without a reload ${shownAt - detail.atMs} ms after the run finished`);
  await shot(page, 'problems');

  // Filters: state, text, sort; each in the URL, and the URL alone gives the same view.
  await page.goto(`${BASE}/ui/checks`);
  await drawn(page);
  const total = await page.$$eval('table.checks tbody tr[data-state]', (rows) => rows.length);
  let since = await page.evaluate(() => Number(document.body.dataset.loaded));
  await page.check('input[data-state="CRITICAL"]');
  await drawn(page, since);
  const states = await page.$$eval('table.checks tbody tr[data-state]', (rows) => rows.map((r) => r.dataset.state));
  check(states.length > 0 && states.every((s) => s === 'CRITICAL'), `only CRITICAL rows: ${states}`);
  check(states.length < total, `the filter removed rows (${states.length} of ${total})`);
  check(new URL(page.url()).searchParams.get('state') === 'CRITICAL', `the state is in the URL: ${page.url()}`);
  since = await page.evaluate(() => Number(document.body.dataset.loaded));
  await page.fill('#f-q', CHECK.split('/').pop());
  await drawn(page, since);
  const checks = await page.$$eval('table.checks tbody tr[data-check]', (rows) => rows.map((r) => r.dataset.check));
  check(checks.length >= 1 && checks.every((c) => c === CHECK), `the text filter keeps ${CHECK}: ${checks}`);
  const shared = page.url();
  check(new URL(shared).searchParams.get('q'), `the text is in the URL: ${shared}`);
  await page.goto(shared);
  await drawn(page);
  const again = await page.$$eval('table.checks tbody tr[data-check]', (rows) => rows.map((r) => r.dataset.check));
  check(JSON.stringify(again) === JSON.stringify(checks), 'the shared URL shows the same rows');
  check(await page.isChecked('input[data-state="CRITICAL"]'), 'and the same filter');
  ok('filters work and live in the URL');
  await page.goto(`${BASE}/ui/checks`);
  await drawn(page);
  since = await page.evaluate(() => Number(document.body.dataset.loaded));
  await page.click('th[data-sort="host"]');
  await drawn(page, since);
  check(new URL(page.url()).searchParams.get('sort') === 'host', 'sorting by host is in the URL');
  since = await page.evaluate(() => Number(document.body.dataset.loaded));
  await page.click('th[data-sort="host"]');
  await drawn(page, since);
  const hosts = await page.$$eval('table.checks tbody tr[data-host]', (rows) => rows.map((r) => r.dataset.host));
  check(JSON.stringify(hosts) === JSON.stringify([...hosts].sort()), `ascending by host: ${hosts}`);
  ok('sorting works');
  await shot(page, 'checks');

  // The process changes colour as its element runs, then completes.
  await page.goto(`${BASE}/ui/processes?name=${encodeURIComponent(PROCESS)}`);
  await drawn(page);
  const element = `svg.graph g[data-element="${ELEMENT}"]`;
  const colour = () => page.$eval(`${element} rect`, (r) => getComputedStyle(r).fill);
  await page.waitForSelector(`${element}[data-state="Standby"]`, { timeout: 10000 });
  const standby = await colour();
  await page.evaluate(() => { window.notReloaded = true; });
  await step('run');
  await page.waitForSelector(`${element}[data-state="Running"]`, { timeout: 30000 });
  const running = await colour();
  await shot(page, 'process-running');
  await step('complete');
  await page.waitForSelector(`${element}[data-state="Completed"]`, { timeout: 30000 });
  const completed = await colour();
  check(await page.evaluate(() => window.notReloaded === true), 'the process page was not reloaded');
  check(new Set([standby, running, completed]).size === 3, `three colours: ${standby}, ${running}, ${completed}`);
  ok(`the process went Standby (${standby}) → Running (${running}) → Completed (${completed}) live`);
  await shot(page, 'process');

  // Every other view is drawn.
  await page.goto(`${BASE}/ui/check?host=${encodeURIComponent(HOST)}&check=${encodeURIComponent(CHECK)}`);
  await drawn(page);
  const text = await page.textContent('main');
  check(text.includes('Definition') && text.includes('Template') && text.includes('History'), 'the check page shows its definition and history');
  check(await page.$$eval('main table tr', (rows) => rows.length) >= 2, 'the history has the change');
  await shot(page, 'check');
  await page.goto(`${BASE}/ui/host?name=${encodeURIComponent(HOST)}`);
  await drawn(page);
  check((await page.$$('table.checks tbody tr[data-check]')).length >= 2, 'the host lists its checks');
  await shot(page, 'host');
  await page.goto(`${BASE}/ui/zones`);
  await drawn(page);
  check(await page.$('.card[data-zone]'), 'a zone card');
  await shot(page, 'zones');
  const ruleSet = CHECK.split('/').slice(0, 2).join('/');
  await page.goto(`${BASE}/ui/matrix?ruleSet=${encodeURIComponent(ruleSet)}`);
  await drawn(page);
  check(await page.$('table.matrix td.cell span.CRITICAL'), 'the matrix colours the broken check');
  await shot(page, 'matrix');
  ok('every view drawn');
});
