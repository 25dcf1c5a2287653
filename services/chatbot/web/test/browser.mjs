// Drives the chat page in headless Chromium (Debian's, through playwright-core): asks each
// question given, waits for each answer to finish, saves a screenshot, and prints one JSON line
// with what the page showed, for the Rust test that then checks the spans the receiver got.
//
//   node test/browser.mjs URL SCREENSHOT QUESTION...
//
// CHROMIUM (default /usr/bin/chromium) names the browser binary.
import { chromium } from 'playwright-core';

const [url, screenshot, ...questions] = process.argv.slice(2);
if (!url || !screenshot || questions.length === 0) {
  console.error('usage: node test/browser.mjs URL SCREENSHOT QUESTION...');
  process.exit(2);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  headless: true,
  // As root in a container, and no background traffic on a closed network.
  args: [
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
  ],
});
try {
  const page = await browser.newPage({ viewport: { width: 900, height: 760 } });
  const problems = [];
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    // A refused question (403 from fraud) and the aborted request of the unreachable case are
    // answers the page shows, not page problems.
    const expected = m.text().startsWith('Failed to load resource') &&
      (/status of 4\d\d/.test(m.text()) || m.text().includes('ERR_CONNECTION_REFUSED'));
    if (m.type() === 'error' && !expected) problems.push(`console: ${m.text()}`);
  });
  await page.goto(url, { waitUntil: 'networkidle' });
  const answers = [];
  for (const [i, question] of questions.entries()) {
    await page.fill('#question', question);
    // Keyboard submit, as a customer would.
    await page.press('#question', 'Enter');
    const turn = page.locator('.turn').nth(i);
    await turn.locator('.meta .trace').waitFor({ timeout: 30000 });
    answers.push({
      question,
      state: await turn.getAttribute('data-state'),
      answer: await turn.locator('.answer .text').textContent(),
      error: await turn.locator('.error').textContent(),
      trace_id: await turn.getAttribute('data-trace-id'),
      meta: await turn.locator('.meta').textContent(),
      products: await turn.locator('.products li').allTextContents(),
    });
  }
  // The chatbot unreachable: the page says so, still with the click's trace id.
  await page.route('**/v1/chat', (route) => route.abort('connectionrefused'));
  await page.fill('#question', 'Is anyone there?');
  await page.press('#question', 'Enter');
  const lost = page.locator('.turn').nth(questions.length);
  await lost.locator('.meta .trace').waitFor({ timeout: 30000 });
  const unreachable = {
    state: await lost.getAttribute('data-state'),
    error: await lost.locator('.error').textContent(),
    trace_id: await lost.getAttribute('data-trace-id'),
  };
  await page.unroute('**/v1/chat');
  const session = await page.evaluate(() => sessionStorage.getItem('shopmax.session'));
  // The page flushes its spans after each answer; give the last upload a moment.
  await page.waitForTimeout(1500);
  await page.screenshot({ path: screenshot, fullPage: true });
  console.log(JSON.stringify({ session, answers, unreachable, problems }));
} finally {
  await browser.close();
}
