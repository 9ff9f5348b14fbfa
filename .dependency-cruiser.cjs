// The layering of host/, checked by `npm run lint` (part of `npm test`). Lower layers never import
// higher ones, and nothing imports in a cycle. From the bottom up (docs/design.md, "The map"):
//   base      faults.ts, abi.ts, native.ts, device-spec.ts, grant.ts, wasm/ — facts, bytes and grant data, no policy
//   sim       host/sim — simulated devices (leaf models; know nothing of drivers or sandboxes)
//   package   host/package — manifests, grants, signatures
//   sandbox   host/sandbox — one driver instance, its worker and the register gate
//   devices   host/devices — opening a real or simulated device for a driver
//   driver    driver.ts, supervisor, reload — lifecycle of one driver
//   tools     fuzz/, campaign/, net/, bench/, service/ — built on drivers and sandboxes
//   cli       host/cli, cli.ts, index.ts — the front door
/** @type {import('dependency-cruiser').IConfiguration} */
const layer = (name, path, forbidden) => ({
  name: `no-upward-from-${name}`,
  comment: `${name} is below ${forbidden.join(', ')} and must not import it`,
  severity: 'error',
  from: { path },
  to: { path: forbidden.map((f) => `^host/${f}`) },
});
const tools = ['fuzz/', 'campaign/', 'net/', 'bench/', 'service/'];
const cli = ['cli/', 'cli\\.ts$', 'index\\.ts$'];
const driver = ['driver\\.ts$', 'supervisor', 'reload\\.ts$'];
module.exports = {
  forbidden: [
    { name: 'no-circular', severity: 'error', comment: 'import cycles hide the layering', from: {}, to: { circular: true } },
    layer('base', '^host/(faults|abi|native|device-spec|grant)\\.ts$|^host/wasm', ['sim/', 'package/', 'sandbox/', 'devices/', ...driver, ...tools, ...cli]),
    layer('sim', '^host/sim/', ['package/', 'sandbox/', 'devices/', ...driver, ...tools, ...cli]),
    layer('package', '^host/package/', ['sandbox/', 'devices/', ...driver, ...tools, ...cli]),
    layer('sandbox', '^host/sandbox/', ['devices/', ...driver, ...tools, ...cli]),
    layer('devices', '^host/devices/', [...driver, ...tools, ...cli]),
    layer('driver', '^host/(driver|reload|supervisor)', [...tools, ...cli]),
    layer('tools', '^host/(fuzz|campaign|net|bench|service)/', cli),
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
  },
};
