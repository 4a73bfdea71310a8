// Preload that shows where a skiff run's wall time goes: every child process
// (git), Engine API call (HTTP over the Docker socket) and registry fetch, with
// its start offset and duration, and every stall of the event loop over 20 ms.
// The first offset is the time spent starting Node and loading modules.
//   node --import ./bench/trace.mjs bin/skiff build --push
import childProcess from 'node:child_process';
import http from 'node:http';
import https from 'node:https';
import { syncBuiltinESMExports } from 'node:module';
import { performance } from 'node:perf_hooks';

const log = (start, what) => {
  const t = performance.now();
  process.stderr.write(`[trace] +${start.toFixed(0).padStart(5)}ms ${(t - start).toFixed(1).padStart(7)}ms  ${what}\n`);
};

for (const name of ['spawn', 'execFile']) {
  const original = childProcess[name];
  childProcess[name] = function (cmd, args, ...rest) {
    const t = performance.now();
    const child = original.call(this, cmd, args, ...rest);
    child.once('exit', () => log(t, `${cmd} ${(Array.isArray(args) ? args : []).join(' ').slice(0, 90)}`));
    return child;
  };
}

// Engine API calls (http over the socket) and Kubernetes API calls (https).
for (const [mod, label] of [
  [http, 'engine'],
  [https, 'kube'],
]) {
  const request = mod.request;
  mod.request = function (...args) {
    const t = performance.now();
    const req = request.apply(this, args);
    // request(url, options, cb) or request(options, cb)
    const opts = args.find((a) => a && typeof a === 'object' && !(a instanceof URL)) ?? {};
    const what = `${label} ${opts.method ?? 'GET'} ${String(opts.path ?? args[0]).split('?')[0]}`;
    req.once('response', (res) => res.once('close', () => log(t, what)));
    return req;
  };
}
syncBuiltinESMExports();

const fetch = globalThis.fetch;
globalThis.fetch = async (url, init) => {
  const t = performance.now();
  const res = await fetch(url, init);
  log(t, `fetch ${init?.method ?? 'GET'} ${String(url).replace(/^https?:\/\/[^/]+/, '')} -> ${res.status}`);
  return res;
};

// A child's or fetch's end is seen only when the event loop is free: while it is busy (loading
// modules, synchronous work) the durations above grow. Stalls are listed so they are not
// mistaken for git, Engine or registry time.
const TICK_MS = 5;
const STALL_MS = 20;
let expected = performance.now() + TICK_MS;
setInterval(() => {
  const now = performance.now();
  const late = now - expected;
  if (late > STALL_MS) log(now - late, 'event loop blocked (module loading or synchronous work)');
  expected = now + TICK_MS;
}, TICK_MS).unref();

process.once('exit', () => log(0, 'process exit (from process start)'));
