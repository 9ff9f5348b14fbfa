// The layering of host/, checked by `npm run lint` (part of `npm test`). Lower layers never import
// higher ones, and nothing imports in a cycle. From the bottom up (docs/design.md, "The map"):
//   base      faults.ts, abi.ts, native.ts, device-spec.ts, grant.ts, wasm/ — facts, bytes and grant data, no policy
//   sim       host/sim — simulated devices (leaf models; know nothing of drivers or sandboxes)
//   package   host/package — manifests, grants, signatures
//   sandbox   host/sandbox — one driver instance, its worker and the register gate
//   devices   host/devices — opening a real or simulated device for a driver
//   driver    driver.ts, driver/, reload.ts, host.ts, package/load.ts — lifecycle of drivers, loading one
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
// package/load.ts is the loader, not package data: it admits a package and loads it into a Driver
// through the Host (it calls host.loadChecked and returns a Driver, and asks devices/confinement.ts
// whether the device's DMA is confined). It therefore sits in the driver layer with host.ts, above
// devices/ and driver.ts; the package layer below keeps manifests, rings, signatures and licences.
const driver = ['driver\\.ts$', 'driver/', 'reload\\.ts$', 'host\\.ts$', 'package/load\\.ts$'];
module.exports = {
  forbidden: [
    { name: 'no-circular', severity: 'error', comment: 'import cycles hide the layering', from: {}, to: { circular: true } },
    layer('base', '^host/(faults|abi|native|device-spec|grant)\\.ts$|^host/wasm', ['sim/', 'package/', 'sandbox/', 'devices/', ...driver, ...tools, ...cli]),
    layer('sim', '^host/sim/', ['package/', 'sandbox/', 'devices/', ...driver, ...tools, ...cli]),
    layer('package', '^host/package/(?!load\\.ts$)', ['sandbox/', 'devices/', ...driver, ...tools, ...cli]),
    layer('sandbox', '^host/sandbox/', ['devices/', ...driver, ...tools, ...cli]),
    layer('devices', '^host/devices/', [...driver, ...tools, ...cli]),
    layer('driver', '^host/(driver\\.ts$|driver/|reload\\.ts$|host\\.ts$|package/load\\.ts$)', [...tools, ...cli]),
    layer('tools', '^host/(fuzz|campaign|net|bench|service)/', cli),
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
  },
};
