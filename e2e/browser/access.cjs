// Who sees what, in a real browser against masters that check tokens: the login page, a viewer
// of one application (SHOP) who sees nothing of another (BILLING) on any view, in the filters,
// the API or the live stream, and the admin who sees both and the zones.
// Env: BASE, SHOTS, VIEWER_TOKEN, ADMIN_TOKEN, SHOP, BILLING, HOST.
'use strict';
const { step, ok, check, newPage, shot, drawn, main } = require('./common.cjs');

const { BASE, VIEWER_TOKEN, ADMIN_TOKEN, SHOP, BILLING, HOST } = process.env;

async function login(page, token) {
  await page.goto(`${BASE}/ui/`);
  await page.waitForURL(/\/ui\/login/, { timeout: 15000 });
  await page.fill('#token', token);
  await page.click('#login');
}

async function get(page, path) {
  return page.evaluate(async (p) => { const r = await fetch(p); return { status: r.status, body: await r.text() }; }, path);
}

main(async (browser) => {
  // No token: the login page; a garbage token is refused with the reason.
  const viewerContext = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  const page = await viewerContext.newPage();
  page.on('pageerror', (e) => { console.log(`pageerror ${e.message}`); process.exitCode = 1; });
  await login(page, 'garbage');
  await page.waitForSelector('#login-error:not([hidden])', { timeout: 15000 });
  const reason = await page.textContent('#login-error');
  check(/not valid|invalid|unauthorized/i.test(reason), `the refusal says why: ${reason}`);
  await shot(page, 'login');
  ok(`a garbage token is refused: ${reason}`);

  // The viewer of SHOP.
  await page.fill('#token', VIEWER_TOKEN);
  await page.click('#login');
  await page.waitForURL((u) => !u.pathname.startsWith('/ui/login'), { timeout: 15000 });
  await drawn(page);
  let text = await page.textContent('main');
  check(text.includes(SHOP), `the viewer sees ${SHOP}'s problem`);
  check(!text.includes(BILLING), `the viewer sees nothing of ${BILLING} on the problems view`);
  check(await page.isHidden('[data-view=zones]'), 'zones are not offered to the viewer');
  await shot(page, 'viewer-problems');
  await page.goto(`${BASE}/ui/checks`);
  await drawn(page);
  text = await page.content();
  check(text.includes(SHOP) && !text.includes(BILLING), `the checks view and its filters hold ${SHOP} only`);
  const checks = JSON.parse((await get(page, `/ui/api/checks?namespace=${BILLING}`)).body);
  check(checks.total === 0, `no ${BILLING} check through the API: ${checks.total}`);
  const all = JSON.parse((await get(page, '/ui/api/checks?limit=1000')).body);
  check(all.rows.every((r) => r.namespace === SHOP), 'every row the API gives is the shop\'s');
  const detail = await get(page, `/ui/api/check?host=${HOST}&check=${BILLING}/ledger/database`);
  check(detail.status === 404, `${BILLING}'s check page is not found for the viewer: ${detail.status}`);
  const zones = await get(page, '/ui/api/zones');
  check(zones.status === 403, `zones are refused to the viewer: ${zones.status} ${zones.body}`);
  const matrix = JSON.parse((await get(page, `/ui/api/matrix?ruleSet=${BILLING}/ledger`)).body);
  check(matrix.machines.length === 0, `no ${BILLING} matrix for the viewer`);
  ok(`the viewer of ${SHOP} sees nothing of ${BILLING}`);

  // The live stream: a change in each application; only the shop's reaches the viewer.
  await page.evaluate(() => {
    window.received = [];
    const source = new EventSource('/ui/api/events');
    source.addEventListener('changes', (e) => window.received.push(...JSON.parse(e.data)));
    window.listening = new Promise((resolve) => { source.onopen = resolve; });
  });
  await page.evaluate(() => window.listening);
  await step('change');
  await page.waitForFunction((shop) => window.received.some((c) => c.namespace === shop), SHOP, { timeout: 15000 });
  await page.waitForTimeout(1000);
  const received = await page.evaluate(() => window.received);
  check(received.every((c) => c.namespace === SHOP), `the stream carried only ${SHOP}: ${JSON.stringify(received)}`);
  ok(`the live stream carried ${received.length} change(s), none of ${BILLING}`);

  // Log out: the login page again, and the API refuses.
  await page.goto(`${BASE}/ui/checks`);
  await drawn(page);
  await page.click('#logout');
  await page.waitForURL(/\/ui\/login/, { timeout: 15000 });
  check((await get(page, '/ui/api/checks')).status === 401, 'logged out, the API asks for a token');
  ok('logout forgets the token');

  // The admin sees both applications and the zones.
  const adminContext = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  const admin = await adminContext.newPage();
  await login(admin, ADMIN_TOKEN);
  await admin.waitForURL((u) => !u.pathname.startsWith('/ui/login'), { timeout: 15000 });
  await drawn(admin);
  text = await admin.textContent('main');
  check(text.includes(SHOP) && text.includes(BILLING), 'the admin sees both applications');
  check((await get(admin, '/ui/api/zones')).status === 200, 'and the zones');
  await shot(admin, 'admin-problems');
  ok('the admin sees everything');
});
