// The OpenFn side of bench/compare: one workload per process, the twin of statefn_side.py.
//
//   node --experimental-vm-modules --no-warnings bench/compare_lib/openfn_side.mjs \
//        OPENFN_DIR WORKLOAD '{"size": ...}'
//
// OPENFN_DIR is the npm folder holding @openfn/runtime (bench/openfn). Prints one JSON
// object of measurements on stdout, or exits 1 naming the wrong result.
//
// Jobs given as source are ES modules exporting their operations, the form @openfn/compiler
// emits (the registry serves no compiler, so the source is written in that form directly;
// `fn` is defined in the module instead of imported from an adaptor). The runtime parses,
// links and evaluates each one in a vm context as part of the run.
import { isDeepStrictEqual } from 'node:util';

import { load } from './openfn_packages.mjs';

const [openfnDir, workload, rawParams = '{}'] = process.argv.slice(2);

const { default: run } = await load(openfnDir, '@openfn/runtime');
const { default: createLogger } = await load(openfnDir, '@openfn/logger');

// statefn's default logger is silent; the runtime's default (a mock) keeps every line.
const options = { logger: createLogger('R', { level: 'none' }) };

class WrongResult extends Error {}
const expect = (condition, message) => {
  if (!condition) throw new WrongResult(message);
};
const show = (value) => JSON.stringify(value).slice(0, 300);

const countUp = (state) => {
  state.n += 1;
  return state;
};

const operations = async ({ count }) => {
  const plan = () => ({ workflow: { steps: [{ id: 'job-1', expression: Array(count).fill(countUp) }] } });
  await run(plan(), { n: 0 }, options);
  const started = performance.now();
  const result = await run(plan(), { n: 0 }, options);
  const elapsed = performance.now() - started;
  expect(result?.n === count && !result.errors, `n != ${count}: ${show(result)}`);
  return { us_per_operation: (elapsed * 1000) / count };
};

// Each job's source differs, as on the statefn side.
const chainPlan = (steps, offset) => ({
  workflow: {
    steps: Array.from({ length: steps }, (_, i) => ({
      id: `s${i}`,
      expression: `const fn = (f) => (state) => f(state);\nexport default [fn((state) => ({ ...state, n: ${offset + i} }))];`,
      ...(i + 1 < steps ? { next: `s${i + 1}` } : {}),
    })),
  },
});

const chain = async ({ steps }) => {
  await run(chainPlan(steps, steps), { data: { seed: 1 } }, options);
  const plan = chainPlan(steps, 0);
  const started = performance.now();
  const result = await run(plan, { data: { seed: 1 } }, options);
  const elapsed = performance.now() - started;
  const expected = { data: { seed: 1 }, n: steps - 1 };
  expect(isDeepStrictEqual(result, expected), `expected ${show(expected)}, got ${show(result)}`);
  return { ms_per_step: elapsed / steps };
};

const mark = (branch) => (state) => {
  state.branch = branch;
  return state;
};

const branching = async ({ branches, runs }) => {
  const ids = Array.from({ length: branches }, (_, k) => k);
  const plan = () => ({
    workflow: {
      steps: [
        {
          id: 'root',
          expression: [countUp],
          next: Object.fromEntries(ids.map((k) => [`b${k}`, `state.data.x === ${k % 2 === 0 ? 1 : 2}`])),
        },
        ...ids.map((k) => ({ id: `b${k}`, expression: [mark(k)] })),
      ],
    },
  });
  const expected = Object.fromEntries(
    ids.filter((k) => k % 2 === 0).map((k) => [`b${k}`, { data: { x: 1 }, n: 1, branch: k }]),
  );
  const timings = [];
  for (let attempt = 0; attempt <= runs; attempt++) {
    const started = performance.now();
    const result = await run(plan(), { data: { x: 1 }, n: 0 }, options);
    const elapsed = performance.now() - started;
    expect(isDeepStrictEqual(result, expected), `expected even leaves, got ${show(result)}`);
    if (attempt) timings.push(elapsed); // the first run warms up
  }
  timings.sort((a, b) => a - b);
  const middle = timings.length >> 1;
  const median = timings.length % 2 ? timings[middle] : (timings[middle - 1] + timings[middle]) / 2;
  return { ms_per_run: median };
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

const touch = (index) => (state) => {
  state.data.records[index].score += 1;
  return state;
};

const bigState = async ({ count, steps }) => {
  const state = { data: { records: records(count) } };
  const size = Buffer.byteLength(JSON.stringify(state));
  const stride = Math.floor(count / steps);
  const plan = {
    workflow: {
      steps: Array.from({ length: steps }, (_, i) => ({
        id: `s${i}`,
        expression: [touch(i * stride)],
        ...(i + 1 < steps ? { next: `s${i + 1}` } : {}),
      })),
    },
  };
  const started = performance.now();
  const result = await run(plan, state, options);
  const elapsed = performance.now() - started;
  const rows = result?.data?.records ?? [];
  expect(rows.length === count && !result.errors, 'records lost or errors in state');
  for (let i = 0; i < steps; i++) {
    const before = state.data.records[i * stride].score;
    expect(rows[i * stride].score === before + 1, `record ${i * stride} not touched`);
  }
  expect(isDeepStrictEqual(rows[1], state.data.records[1]), 'an untouched record changed');
  return { state_mb: size / 1e6, ms_per_step: elapsed / steps };
};

const coldStart = async () => {
  const job = "const fn = (f) => (state) => f(state);\nexport default [fn((state) => ({ ...state, data: { ok: true } }))];";
  const result = await run({ workflow: { steps: [{ id: 'only', expression: job }] } }, undefined, options);
  expect(isDeepStrictEqual(result, { data: { ok: true } }), `expected ok, got ${show(result)}`);
  return {};
};

const workloads = { operations, chain, branching, big_state: bigState, cold_start: coldStart };

try {
  console.log(JSON.stringify(await workloads[workload](JSON.parse(rawParams))));
} catch (error) {
  if (!(error instanceof WrongResult)) throw error;
  console.error(`openfn ${workload}: wrong result: ${error.message}`);
  process.exit(1);
}
