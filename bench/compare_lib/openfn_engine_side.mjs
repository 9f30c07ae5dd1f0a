// The OpenFn side of bench/compare's engine workloads: @openfn/engine-multi, one workload
// per process.
//
//     node bench/compare_lib/openfn_engine_side.mjs OPENFN_DIR WORKLOAD '{"runs": ...}'
//
// OPENFN_DIR is the npm folder holding @openfn/engine-multi (bench/openfn), installed with
// a pass-through stand-in for @openfn/compiler (see openfn_compiler_standin/). Prints one
// JSON object of measurements on stdout, or exits 1 naming the wrong result.
//
// The engine runs 2 workers with autoinstall off: no step names an adaptor to install,
// and the trivial job imports `fn` from @openfn/language-common (the version engine-multi
// depends on, already in OPENFN_DIR), resolved through the step's own linker entry. Jobs
// are given in the form the compiler emits (ES modules exporting their operations), so the
// stand-in compiler hands them on unchanged.
import { mkdtempSync, rmSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';

import { load } from './openfn_packages.mjs';

const [openfnDir, workload, rawParams = '{}'] = process.argv.slice(2);

const { default: createEngine } = await load(openfnDir, '@openfn/engine-multi');
const { default: createLogger } = await load(openfnDir, '@openfn/logger');

const WORKERS = 2;
const WARM_UP_RUNS = 10;
const COMMON = join(openfnDir, 'node_modules', '@openfn', 'language-common');
const commonVersion = JSON.parse(await readFile(join(COMMON, 'package.json'), 'utf8')).version;

class WrongResult extends Error {}
const expect = (condition, message) => {
  if (!condition) throw new WrongResult(message);
};
const show = (value) => JSON.stringify(value)?.slice(0, 300);

const repoDir = mkdtempSync(join(tmpdir(), 'statefn-bench-openfn-repo-'));

// Silent, as statefn's engine is by default: the engine's logger (which also receives every
// line the runtime logs in the worker) writes to an emitter that drops everything; at
// level 'none' alone it still prints errors.
const drop = () => {};
const silent = { info: drop, debug: drop, log: drop, warn: drop, error: drop, success: drop, always: drop };

const startEngine = (options = {}) =>
  createEngine({
    logger: createLogger('ENGINE', { level: 'none', logger: silent }),
    repoDir,
    maxWorkers: WORKERS,
    autoinstall: {
      skipRepoValidation: true,
      handleIsInstalled: async () => true,
      handleInstall: async (specifier) => {
        throw new Error(`autoinstall is off (asked for ${specifier})`);
      },
    },
    ...options,
  });

let planCount = 0;
const EVENTS = ['workflow-start', 'job-start', 'job-complete', 'job-error', 'workflow-log'];

// Execute a plan; resolves with how it ended (workflow-complete or workflow-error) and,
// when `listen` is set, every event it sent before.
const execute = (engine, steps, input = {}, options = {}, listen = false) =>
  new Promise((resolve) => {
    const plan = { id: `run-${planCount++}`, workflow: { steps } };
    const events = [];
    const handle = engine.execute(plan, input, options);
    if (listen) for (const name of EVENTS) handle.on(name, (event) => events.push([name, event]));
    handle.on('workflow-complete', (event) => resolve({ state: event.state, events }));
    handle.on('workflow-error', (event) => resolve({ error: event, events }));
  });

const TRIVIAL_STEPS = [
  {
    id: 'only',
    expression:
      "import { fn } from '@openfn/language-common';\n" +
      'export default [fn((state) => ({ ...state, data: { ok: true } }))];',
    linker: { '@openfn/language-common': { path: COMMON, version: commonVersion } },
  },
];
const TRIVIAL_RESULT = { data: { ok: true } };

const checkTrivial = (ended) =>
  expect(
    !ended.error && isDeepStrictEqual(ended.state, TRIVIAL_RESULT),
    `expected ${show(TRIVIAL_RESULT)}, got ${show(ended.error ?? ended.state)}`,
  );

const warmUp = async (engine) => {
  for (let i = 0; i < WARM_UP_RUNS; i++) checkTrivial(await execute(engine, TRIVIAL_STEPS));
};

// The nearest-rank percentile: the smallest value at or above `fraction` of them.
const percentile = (values, fraction) => {
  const ordered = [...values].sort((a, b) => a - b);
  return ordered[Math.max(1, Math.ceil(fraction * ordered.length)) - 1];
};

const median = (values) => {
  const ordered = [...values].sort((a, b) => a - b);
  const middle = ordered.length >> 1;
  return ordered.length % 2 ? ordered[middle] : (ordered[middle - 1] + ordered[middle]) / 2;
};

const latency = async (engine, { runs }) => {
  await warmUp(engine);
  const timings = [];
  for (let i = 0; i < runs; i++) {
    const started = performance.now();
    const ended = await execute(engine, TRIVIAL_STEPS);
    timings.push(performance.now() - started);
    checkTrivial(ended);
  }
  return { p50_ms: percentile(timings, 0.5), p95_ms: percentile(timings, 0.95) };
};

const throughput = async (engine, { runs }) => {
  await warmUp(engine);
  const started = performance.now();
  const ended = await Promise.all(Array.from({ length: runs }, () => execute(engine, TRIVIAL_STEPS)));
  const elapsed = performance.now() - started;
  ended.forEach(checkTrivial);
  return { runs_per_s: (runs * 1000) / elapsed };
};

const SPIN_STEPS = [{ id: 'spin', expression: 'export default [(state) => { while (true) {} }];' }];

const timeout = async (engine, { limit_ms: limit, runs }) => {
  await warmUp(engine);
  const late = [];
  for (let i = 0; i < runs; i++) {
    const started = performance.now();
    const ended = await execute(engine, SPIN_STEPS, {}, { runTimeoutMs: limit });
    late.push(performance.now() - started - limit);
    expect(ended.error?.type === 'TimeoutError', `expected a TimeoutError, got ${show(ended)}`);
  }
  return { past_limit_ms: median(late), worst_past_limit_ms: Math.max(...late) };
};

const records = (count) =>
  Array.from({ length: count }, (_, i) => ({
    id: i,
    name: `Patient number ${String(i).padStart(6, '0')}`,
    email: `patient.${String(i).padStart(6, '0')}@clinic.example.org`,
    tags: ['outpatient', 'follow-up', 'district-7', 'insured', 'adult'],
    active: i % 3 !== 0,
    score: ((i * 731) % 100000) / 1000,
  }));

const bigStateSteps = (steps, stride) =>
  Array.from({ length: steps }, (_, i) => ({
    id: `s${i}`,
    expression: `export default [(state) => { state.data.records[${i * stride}].score += 1; return state; }];`,
    ...(i + 1 < steps ? { next: `s${i + 1}` } : {}),
  }));

const bigState = async (engine, { count, steps, payload_limit_mb: limit, small_limit_mb: small }) => {
  await warmUp(engine);
  const state = { data: { records: records(count) } };
  const size = Buffer.byteLength(JSON.stringify(state));
  const stride = Math.floor(count / steps);
  const plan = bigStateSteps(steps, stride);
  const started = performance.now();
  const ended = await execute(engine, plan, state, { payloadLimitMb: limit }, true);
  const elapsed = performance.now() - started;
  const rows = ended.state?.data?.records ?? [];
  expect(!ended.error && rows.length === count && !ended.state.errors, `records lost or errors: ${show(ended.error ?? ended.state?.errors)}`);
  for (let i = 0; i < steps; i++) {
    const before = state.data.records[i * stride].score;
    expect(rows[i * stride].score === before + 1, `record ${i * stride} not touched`);
  }
  expect(isDeepStrictEqual(rows[1], state.data.records[1]), 'an untouched record changed');
  const completes = ended.events.filter(([name]) => name === 'job-complete');
  expect(completes.length === steps, `${completes.length} job-complete events, not ${steps}`);
  expect(
    completes.every(([, event]) => isDeepStrictEqual(event.state.data.records[1], state.data.records[1])),
    "an event's state is not the step's state",
  );
  // Once more at a payload limit the state is over: the engine replaces `data` in the
  // state it reports with "[REDACTED]", in the object the next step then receives.
  const atSmall = await execute(engine, plan, state, { payloadLimitMb: small }, true);
  const redacted = atSmall.events.filter(([, event]) => event.state?.data === '[REDACTED]');
  const failed = atSmall.events.filter(([name]) => name === 'job-error');
  return {
    state_mb: size / 1e6,
    ms_per_step: elapsed / steps,
    events: ended.events.length + 1,
    redacted_at_small_limit: redacted.length,
    failed_steps_at_small_limit: failed.length,
    completed_at_small_limit: atSmall.error ? 0 : 1,
    result_redacted_at_small_limit: atSmall.state?.data === '[REDACTED]' ? 1 : 0,
  };
};

const workloads = { latency, throughput, timeout, big_state: bigState };

const engine = await startEngine();
try {
  console.log(JSON.stringify(await workloads[workload](engine, JSON.parse(rawParams))));
} catch (error) {
  if (!(error instanceof WrongResult)) throw error;
  console.error(`openfn engine ${workload}: wrong result: ${error.message}`);
  process.exitCode = 1;
} finally {
  await engine.destroy(true);
  rmSync(repoDir, { recursive: true, force: true });
}
