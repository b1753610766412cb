// bench/popcore.js: the @alicloud/pop-core contender of the request-overhead
// bench (run by bench/overhead.lua, one process per round).
//
//   POPCORE=build/bench/node/node_modules/@alicloud/pop-core node bench/popcore.js PORT N WARMUP
//
// WARMUP calls, then N timed sequential `await client.request(
// 'DescribeCdnService', {}, {method: 'GET'})` (pop-core signs HMAC-SHA1 v2
// like cdnkit, sends the GET and JSON.parses the answer).  Keep-alive: the
// client is given an http.Agent({keepAlive: true, maxSockets: 1}) through
// config.opts.agent, which pop-core passes on to every request (pop-core
// 1.8 would otherwise use its own keep-alive agent).  Prints "<calls per
// second> <process CPU microseconds per call>" for the timed calls; exits 1
// on any error.
'use strict';
const http = require('http');
const path = require('path');

const [port, n, warm] = process.argv.slice(2).map(Number);
if (!port || !n || Number.isNaN(warm)) {
  console.error('usage: popcore.js PORT N WARMUP');
  process.exit(2);
}
const { RPCClient } = require(path.resolve(process.env.POPCORE ||
  'build/bench/node/node_modules/@alicloud/pop-core'));

const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
const client = new RPCClient({
  accessKeyId: 'testid',
  accessKeySecret: 'testsecret',
  endpoint: `http://127.0.0.1:${port}`,
  apiVersion: '2014-11-11',
  opts: { agent },
});

async function once() {
  const r = await client.request('DescribeCdnService', {}, { method: 'GET' });
  if (r === null || typeof r !== 'object') throw new Error('answer is not an object: ' + r);
}

(async () => {
  for (let i = 0; i < warm; i++) await once();
  const t = process.hrtime.bigint();
  const cpu = process.cpuUsage();
  for (let i = 0; i < n; i++) await once();
  const s = Number(process.hrtime.bigint() - t) / 1e9;
  const c = process.cpuUsage(cpu);
  console.log(`${(n / s).toFixed(1)} ${((c.user + c.system) / n).toFixed(2)}`);
  agent.destroy();
})().catch((e) => {
  console.error('bench/popcore.js: ' + (e && e.stack || e));
  process.exit(1);
});
