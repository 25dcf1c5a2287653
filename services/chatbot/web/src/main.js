// The ShopMax chat page. A click on "Ask" starts the trace: a root span `ask` of the service
// shopmax-web, whose fetch of /v1/chat is a CLIENT child that carries traceparent and baggage
// (session.id) to the chatbot, which continues the trace down to the LLM. The browser's spans go
// to /v1/traces on the same origin; the chatbot forwards them to the Collector.

import { context, propagation, trace, SpanStatusCode } from '@opentelemetry/api';
import {
  CompositePropagator,
  W3CBaggagePropagator,
  W3CTraceContextPropagator,
} from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { registerInstrumentations } from '@opentelemetry/instrumentation';
import { DocumentLoadInstrumentation } from '@opentelemetry/instrumentation-document-load';
import { FetchInstrumentation } from '@opentelemetry/instrumentation-fetch';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BatchSpanProcessor, WebTracerProvider } from '@opentelemetry/sdk-trace-web';
import { ATTR_SERVICE_NAME, ATTR_SERVICE_VERSION } from '@opentelemetry/semantic-conventions';

const provider = new WebTracerProvider({
  resource: resourceFromAttributes({
    [ATTR_SERVICE_NAME]: 'shopmax-web',
    [ATTR_SERVICE_VERSION]: '0.1.0',
  }),
  spanProcessors: [
    new BatchSpanProcessor(new OTLPTraceExporter({ url: '/v1/traces' }), {
      scheduledDelayMillis: 500,
    }),
  ],
});
provider.register({
  propagator: new CompositePropagator({
    propagators: [new W3CTraceContextPropagator(), new W3CBaggagePropagator()],
  }),
});
registerInstrumentations({
  instrumentations: [
    new DocumentLoadInstrumentation(),
    // Same-origin requests carry the trace headers; the exporter's own POSTs are not traced.
    new FetchInstrumentation({ ignoreUrls: [/\/v1\/traces$/] }),
  ],
});
const tracer = trace.getTracer('shopmax-web');

// One session per tab: a hint the chatbot keeps as session.id (never an identity).
function sessionId() {
  let id = sessionStorage.getItem('shopmax.session');
  if (!id) {
    const bytes = crypto.getRandomValues(new Uint8Array(8));
    id = 'web-' + Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
    sessionStorage.setItem('shopmax.session', id);
  }
  return id;
}

const traceUrl = document.querySelector('meta[name="shopmax-trace-url"]')?.content ?? '';
const form = document.getElementById('ask');
const input = document.getElementById('question');
const button = document.getElementById('send');
const conversation = document.getElementById('conversation');
const template = document.getElementById('turn');

function element(tag, className, text) {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text !== undefined) e.textContent = text;
  return e;
}

/** The trace id as text and, when the UI's URL is configured, a link to it. */
function traceLink(traceId) {
  const wrap = element('span');
  wrap.append('trace ');
  if (traceUrl && !traceUrl.startsWith('{{')) {
    const a = element('a', 'trace', traceId);
    a.href = traceUrl.replace('{trace_id}', traceId);
    a.target = '_blank';
    a.rel = 'noopener';
    a.title = 'open trace';
    wrap.append(a);
  } else {
    wrap.append(element('code', 'trace', traceId));
  }
  return wrap;
}

function showMeta(turn, facts) {
  const meta = turn.querySelector('.meta');
  meta.replaceChildren(...facts.filter(Boolean));
}

function showProducts(turn, products) {
  const list = turn.querySelector('.products');
  list.replaceChildren(
    ...(products ?? []).map((p) => {
      const li = element('li');
      li.append(element('b', '', p.name), ` Rs ${p.price_inr} · ${p.warehouse}`);
      return li;
    }),
  );
}

function fraudFact(fraud) {
  if (!fraud) return null;
  return element('span', `verdict-${fraud.decision}`, `fraud: ${fraud.decision}`);
}

function showError(turn, status, detail, fraud) {
  const error = turn.querySelector('.error');
  const messages = {
    blocked: 'Blocked by fraud screening',
    llm_unavailable: 'The language model is unavailable',
    llm_timeout: 'The language model did not answer in time',
    deadline_exceeded: 'The answer took too long',
    fraud_unavailable: 'Fraud screening is unavailable',
    unreachable: 'The assistant cannot be reached',
    cut_off: 'The answer was cut off',
  };
  const reasons = (fraud?.reasons ?? []).map((r) => r.rule).join(', ');
  // Our own wording where we have it; the server's message only for what we do not know.
  const known = messages[detail?.code];
  error.textContent =
    (known ?? detail?.message ?? 'Something went wrong') +
    (reasons ? ` (${reasons})` : '') +
    (status ? ` [HTTP ${status}]` : '');
  error.hidden = false;
}

/** Reads server-sent events from a fetch response body: calls `on(event, data)` for each. */
async function readEvents(response, on) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  let event = 'message';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf('\n')) >= 0) {
      const line = buffer.slice(0, end).replace(/\r$/, '');
      buffer = buffer.slice(end + 1);
      if (line.startsWith('event:')) event = line.slice(6).trim();
      else if (line.startsWith('data:')) on(event, JSON.parse(line.slice(5)));
      else if (line === '') event = 'message';
    }
  }
}

async function ask(question, span) {
  const turn = template.content.firstElementChild.cloneNode(true);
  turn.querySelector('.question').textContent = question;
  conversation.append(turn);
  turn.scrollIntoView({ block: 'end' });
  const text = turn.querySelector('.text');
  const started = performance.now();
  let firstToken = null;
  let traceId = span.spanContext().traceId;
  let meta = {};
  let done = null;
  let failed = null;

  // The fetch is made in the span's context, with the session hint in baggage: the fetch
  // instrumentation makes it a CLIENT child and sends traceparent and baggage.
  const baggage = propagation.createBaggage({ 'session.id': { value: sessionId() } });
  const cx = propagation.setBaggage(trace.setSpan(context.active(), span), baggage);
  let status = null;
  try {
    const response = await context.with(cx, () =>
      fetch('/v1/chat', {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'text/event-stream' },
        body: JSON.stringify({ question, stream: true }),
      }),
    );
    status = response.ok ? null : response.status;
    span.setAttribute('http.response.status_code', response.status);
    const type = response.headers.get('content-type') ?? '';
    if (type.startsWith('text/event-stream')) {
      await readEvents(response, (event, data) => {
        if (event === 'meta') {
          meta = data;
          traceId = data.trace_id ?? traceId;
          showProducts(turn, data.products);
        } else if (event === 'delta') {
          if (firstToken === null) firstToken = performance.now() - started;
          text.textContent += data.text;
        } else if (event === 'done') {
          done = data;
        } else if (event === 'error') {
          failed = data;
        }
      });
      if (!done && !failed) failed = { code: 'cut_off' };
    } else {
      const body = await response.json().catch(() => ({}));
      failed = body.error ?? { code: 'error' };
      meta = { fraud: body.fraud };
      traceId = failed.trace_id ?? traceId;
    }
  } catch (error) {
    // The chatbot could not be reached, or the connection dropped mid-answer: the trace of
    // this click (and whatever the chatbot said before) still has an id to show.
    failed = { code: 'unreachable' };
    span.recordException(error);
  }
  turn.classList.add('done');
  if (failed) {
    if (!text.textContent) turn.querySelector('.answer').hidden = true;
    showError(turn, status, failed, meta.fraud);
    span.setStatus({ code: SpanStatusCode.ERROR, message: failed.code });
  }
  const degraded = (meta.degraded ?? []).length
    ? element('span', 'degraded', `degraded: ${meta.degraded.join(', ')}`)
    : null;
  const cost = done?.cost ? `cost ${done.cost.amount} ${done.cost.currency}` : null;
  showMeta(turn, [
    fraudFact(meta.fraud),
    degraded,
    firstToken !== null ? element('span', '', `first token ${Math.round(firstToken)} ms`) : null,
    done?.usage ? element('span', '', `${done.usage.prompt_tokens} + ${done.usage.completion_tokens} tokens`) : null,
    cost ? element('span', '', cost) : null,
    traceLink(traceId),
  ]);
  turn.dataset.traceId = traceId;
  turn.dataset.state = failed ? 'error' : 'answered';
}

form.addEventListener('submit', (event) => {
  event.preventDefault();
  const question = input.value.trim();
  if (!question) return;
  input.value = '';
  button.disabled = true;
  // The click is the root of the trace.
  tracer.startActiveSpan('ask', { root: true, attributes: { 'shopmax.channel': 'web' } }, (span) => {
    ask(question, span)
      .catch((error) => {
        // Only a bug in this page gets here: ask() handles the network's failures.
        span.recordException(error);
        span.setStatus({ code: SpanStatusCode.ERROR, message: String(error) });
      })
      .finally(() => {
        span.end();
        button.disabled = false;
        input.focus();
        // Send the spans now rather than at the next scheduled export; a collector that is
        // down costs the page nothing.
        provider.forceFlush().catch(() => {});
      });
  });
});
input.focus();
