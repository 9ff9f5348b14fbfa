// npm run test:vm — boot Debian's kernel in QEMU (TCG) once per scenario and run that scenario's guest
// script with the host's own Node (the one running this file) over a read-only 9p share of /.
//
//   node scripts/vm/run-vm-tests.mjs [SCENARIO...]     default: every scripts/vm/scenarios/*.mjs
//   WASMDRV_VM_KERNELS=all|older|VER[,VER]             default: the newest kernel with headers;
//                                                      older: every other one (npm run test:vm:older)
//   WASMDRV_VM_TIMEOUT_MS=N                            per boot, default 300000 (a scenario may set its own)
//
// A scenario (scripts/vm/scenarios/NAME.mjs) exports { name, guest, qemu(ctx), expected, and optionally
// description, machine (replaces '-machine'), append (kernel command line), modules (kernel modules to
// insmod, dependencies resolved from modules.dep), optionalModules (of those, the ones a kernel may
// lack, e.g. vfio_virqfd, folded into vfio in 6.2: skipped where neither a module nor built in), stub (insmod arguments for kernel-stub, or null: not
// loaded), needs (files that must exist), timeoutMs, prepare(ctx), started(ctx), onTag(ctx, tag, rest),
// finished(ctx) -> checks }. The guest reports `@@CHECK {...}`, `@@METRIC {...}`, `@@NOTE text` (printed
// as it is: a metric's raw figures), `@@DONE`.
//
// A scenario fails on: a failing or missing check, a guest that does not finish in time, a kernel
// oops/BUG/WARNING. The guest console is printed when it fails.
import { spawn, spawnSync, execFileSync } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
  chmodSync,
} from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import cliProgress from 'cli-progress';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const work = join(root, '.vm');
const scenarioDir = join(root, 'scripts', 'vm', 'scenarios');
const DEFAULT_TIMEOUT_MS = Number(process.env.WASMDRV_VM_TIMEOUT_MS ?? 300_000);
const started = Date.now();
const log = (s) => console.log(`[vm] ${s}`);

/** Debian kernels that have matching headers and modules, oldest first. */
function installedKernels() {
  return readdirSync('/boot')
    .filter((f) => /^vmlinuz-.*-amd64$/.test(f))
    .map((f) => f.slice('vmlinuz-'.length))
    .filter((v) => existsSync(`/usr/src/linux-headers-${v}`) && existsSync(`/lib/modules/${v}/modules.dep`))
    .sort((a, b) => a.localeCompare(b, undefined, { numeric: true }));
}

function kernelsToRun() {
  const have = installedKernels();
  if (!have.length) throw new Error('no Debian kernel with matching headers: run scripts/vm/install-deps.sh');
  const want = process.env.WASMDRV_VM_KERNELS;
  if (!want) return [have.at(-1)];
  if (want === 'all') return have;
  if (want === 'older') {
    if (have.length < 2)
      throw new Error(
        `WASMDRV_VM_KERNELS=older: only ${have.join(', ')} is installed with headers (scripts/vm/install-deps.sh installs 6.1 and 6.12)`,
      );
    return have.slice(0, -1);
  }
  const list = want
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  for (const k of list)
    if (!have.includes(k))
      throw new Error(
        `WASMDRV_VM_KERNELS names kernel ${k}, which is not installed with headers (have: ${have.join(', ')})`,
      );
  return list;
}

/** Modules to load in the guest, dependencies first, from the kernel's modules.dep. */
function moduleChain(kver, wanted, optional = []) {
  const base = `/lib/modules/${kver}`;
  const deps = new Map();
  for (const line of readFileSync(`${base}/modules.dep`, 'utf8').split('\n')) {
    const [mod, rest] = line.split(':');
    if (mod) deps.set(mod, rest.trim() ? rest.trim().split(/\s+/) : []);
  }
  const builtin = new Set(
    readFileSync(`${base}/modules.builtin`, 'utf8')
      .split('\n')
      .map((l) =>
        basename(l)
          .replace(/\.ko.*$/, '')
          .replace(/-/g, '_'),
      ),
  );
  const byName = new Map(
    [...deps.keys()].map((p) => [
      basename(p)
        .replace(/\.ko.*$/, '')
        .replace(/-/g, '_'),
      p,
    ]),
  );
  const order = [];
  const visit = (path) => {
    if (order.includes(path)) return;
    for (const d of deps.get(path) ?? []) visit(d);
    order.push(path);
  };
  for (const name of wanted) {
    const path = byName.get(name.replace(/-/g, '_'));
    if (path) visit(path);
    else if (!builtin.has(name.replace(/-/g, '_')) && !optional.includes(name))
      throw new Error(`kernel ${kver} has no module ${name}`);
  }
  return order.map((p) => join(base, p));
}

const stubs = new Map();
function buildStub(kver) {
  if (stubs.has(kver)) return stubs.get(kver);
  log(`building kernel-stub against /usr/src/linux-headers-${kver}`);
  const dir = join(work, `stub-${kver}`);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  for (const f of readdirSync(join(root, 'kernel-stub')))
    if (/\.(c|h)$|^(Kbuild|Makefile)$/.test(f)) copyFileSync(join(root, 'kernel-stub', f), join(dir, f));
  const r = spawnSync('make', ['-s', '-C', dir, `KDIR=/usr/src/linux-headers-${kver}`], { encoding: 'utf8' });
  const out = `${r.stdout}${r.stderr}`;
  if (r.status !== 0) throw new Error(`kernel-stub does not build against ${kver}:\n${out}`);
  if (/warning/i.test(out)) throw new Error(`kernel-stub builds with warnings against ${kver}:\n${out}`);
  const ko = join(dir, 'wasmdrv_uio.ko');
  stubs.set(kver, ko);
  return ko;
}

function buildInitramfs(kver, scenario) {
  const dir = join(work, `initramfs-${scenario.name}`);
  rmSync(dir, { recursive: true, force: true });
  for (const d of ['bin', 'proc', 'sys', 'dev', 'modules', 'host']) mkdirSync(join(dir, d), { recursive: true });
  copyFileSync('/bin/busybox', join(dir, 'bin', 'busybox'));
  chmodSync(join(dir, 'bin', 'busybox'), 0o755);
  copyFileSync(join(root, 'test', 'vm', 'init.sh'), join(dir, 'init'));
  chmodSync(join(dir, 'init'), 0o755);
  if (scenario.stub !== null) copyFileSync(buildStub(kver), join(dir, 'wasmdrv_uio.ko'));
  const chain = moduleChain(
    kver,
    ['virtio_pci', '9pnet_virtio', '9p', ...(scenario.modules ?? [])],
    scenario.optionalModules,
  );
  const names = [];
  for (const m of chain) {
    let name = basename(m);
    if (name.endsWith('.xz')) {
      name = name.slice(0, -3);
      writeFileSync(join(dir, 'modules', name), execFileSync('xz', ['-dc', m], { maxBuffer: 64 << 20 }));
    } else if (name.endsWith('.zst')) {
      name = name.slice(0, -4);
      writeFileSync(join(dir, 'modules', name), execFileSync('zstd', ['-dc', m], { maxBuffer: 64 << 20 }));
    } else {
      copyFileSync(m, join(dir, 'modules', name));
    }
    names.push(name);
  }
  writeFileSync(join(dir, 'modules.load'), `${names.join('\n')}\n`);
  const image = join(work, `initramfs-${scenario.name}.cpio.gz`);
  execFileSync('sh', ['-c', `cd "${dir}" && find . -print0 | cpio --null -o -H newc --quiet | gzip -1 > "${image}"`]);
  log(`initramfs: ${names.length} modules (${names.join(' ')}), ${statSync(image).size >> 10} KiB`);
  return image;
}

async function loadScenarios(names) {
  const all = readdirSync(scenarioDir)
    .filter((f) => f.endsWith('.mjs'))
    .map((f) => f.slice(0, -4))
    .sort();
  // uio first: it is the oldest and the quickest to tell whether the harness itself works.
  all.sort((a, b) => (a === 'uio' ? -1 : b === 'uio' ? 1 : 0));
  for (const n of names) if (!all.includes(n)) throw new Error(`no VM scenario "${n}" (have: ${all.join(', ')})`);
  const out = [];
  for (const n of names.length ? names : all)
    out.push((await import(pathToFileURL(join(scenarioDir, `${n}.mjs`)).href)).default);
  return out;
}

/** Boot one scenario on one kernel; returns { checks, problems }. */
async function runScenario(scenario, kver) {
  const ctx = { root, work, kver };
  const label = `${scenario.name} on ${kver}`;
  for (const f of scenario.needs ?? [])
    if (!existsSync(join(root, f))) throw new Error(`${f} is missing: run npm run build first`);
  await scenario.prepare?.(ctx);
  const image = buildInitramfs(kver, scenario);
  const stubArgs =
    scenario.stub === null ? 'none' : (scenario.stub ?? '').trim().split(/\s+/).filter(Boolean).join(',') || '-';
  const append = [
    'console=ttyS0 panic=-1 loglevel=4',
    scenario.append ?? '',
    `wasmdrv.project=${root}`,
    `wasmdrv.guest=${scenario.guest}`,
    `wasmdrv.node=${process.execPath}`,
    `wasmdrv.stub=${stubArgs}`,
    // The guest's environment: a gate compile deadline for an emulated CPU (TCG counts a starved vCPU's
    // time as the process's own CPU, so a compile on a loaded host can use the host's 60 s default:
    // docs/design.md, "A hang"), then WASMDRV_VM_GUEST_ENV="K=V,K2=V2" (a debugging aid; later wins).
    `wasmdrv.env=${['WASMDRV_GATE_COMPILE_TIMEOUT_MS=300000', process.env.WASMDRV_VM_GUEST_ENV].filter(Boolean).join(',')}`,
    // WASMDRV_VM_CORES=1: a process that crashes in the guest leaves a core; gdb prints its stacks (@@GDB).
    process.env.WASMDRV_VM_CORES === '1' ? 'wasmdrv.cores=1' : '',
  ]
    .filter(Boolean)
    .join(' ');
  const args = [
    '-accel',
    'tcg',
    '-m',
    String(scenario.memoryMiB ?? 1024),
    '-smp',
    '2',
    '-no-reboot',
    '-display',
    'none',
    '-monitor',
    'none',
    '-nodefaults',
    ...(scenario.machine ?? []),
    '-kernel',
    `/boot/vmlinuz-${kver}`,
    '-initrd',
    image,
    '-append',
    append,
    '-virtfs',
    'local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap',
    '-chardev',
    'stdio,id=console',
    '-device',
    'isa-serial,chardev=console,iobase=0x3f8,irq=4',
    ...scenario.qemu(ctx),
  ];
  log(`[${label}] booting: qemu-system-x86_64 ${args.join(' ')}`);
  const t0 = Date.now();
  const qemu = spawn('qemu-system-x86_64', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise((resolve) => qemu.on('exit', (code, signal) => resolve({ code, signal })));
  let console_ = '';
  const checks = [];
  const metrics = [];
  const problems = [];
  let done = false;
  let booted = 0;
  try {
    await scenario.started?.(ctx);
  } catch (err) {
    problems.push(`${scenario.name}: ${err.message}`);
    qemu.kill('SIGKILL');
  }
  let pending = '';
  qemu.stdout.on('data', (d) => {
    const s = d.toString('latin1');
    console_ += s;
    pending += s;
    let nl;
    while ((nl = pending.indexOf('\n')) >= 0) {
      const line = pending.slice(0, nl).replace(/\r$/, '');
      pending = pending.slice(nl + 1);
      const m = /@@(\w[\w-]*)\s?(.*)$/.exec(line);
      if (!m) continue;
      const [, tag, rest] = m;
      if (tag === 'CHECK') {
        const c = JSON.parse(rest);
        checks.push(c);
        console.log(`${c.ok ? 'ok  ' : 'FAIL'} ${c.name}: ${c.detail ?? ''}`);
      } else if (tag === 'METRIC') {
        const x = JSON.parse(rest);
        metrics.push(x);
        console.log(`     ${x.name}: ${x.value} ${x.unit}`);
      } else if (tag === 'DONE') {
        done = true;
      } else if (tag === 'BOOTED') {
        booted = Date.now();
        log(`[${label}] guest init running (kernel uptime ${rest} s)`);
      } else if (tag === 'NOTE') {
        console.log(`     ${rest}`);
      } else if (tag === 'CORE' || tag === 'GDB') {
        console.log(`${tag === 'CORE' ? 'core' : '    '} ${rest}`);
      } else if (tag === 'INIT-ERROR') {
        checks.push({ name: 'guest init', ok: false, detail: rest });
      } else {
        scenario.onTag?.(ctx, tag, rest);
      }
    }
  });
  qemu.stderr.on('data', (d) => {
    console_ += d.toString();
  });

  const timeoutMs = scenario.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const timer = setTimeout(() => qemu.kill('SIGKILL'), timeoutMs);
  const { code, signal } = await exited;
  clearTimeout(timer);

  if (signal) problems.push(`QEMU was killed (${signal}) after ${timeoutMs / 1000} s: the guest did not finish`);
  else if (code !== 0) problems.push(`QEMU exited with ${code}`);
  if (!done) problems.push('the guest test did not reach its end (@@DONE)');
  const kernelTrouble = console_.split('\n').filter((l) => /\b(BUG:|WARNING:|Oops|Call Trace|Kernel panic)/.test(l));
  if (kernelTrouble.length) problems.push(`the kernel complained:\n  ${kernelTrouble.slice(0, 10).join('\n  ')}`);
  for (const c of (await scenario.finished?.(ctx)) ?? []) {
    checks.push(c);
    console.log(`${c.ok ? 'ok  ' : 'FAIL'} ${c.name}: ${c.detail ?? ''}`);
  }
  for (const name of scenario.expected ?? [])
    if (!checks.some((c) => c.name === name)) problems.push(`check "${name}" never ran`);
  const failed = checks.filter((c) => !c.ok);
  if (failed.length || problems.length) {
    console.log(`\n---- guest console (${label}) ----`);
    console.log(console_.replace(/\r/g, ''));
    console.log('---- end of guest console ----');
    for (const p of problems) console.log(`problem (${label}): ${p}`);
  }
  const suffix = scenario.name === 'uio' ? '' : `-${scenario.name}`;
  writeFileSync(
    join(work, `metrics${suffix}.json`),
    `${JSON.stringify({ date: new Date().toISOString(), scenario: scenario.name, kernel: kver, metrics }, null, 2)}\n`,
  );
  log(
    `[${label}] ${((Date.now() - t0) / 1000).toFixed(1)} s (boot to init ${booted ? ((booted - t0) / 1000).toFixed(1) : '?'} s): ` +
      `${checks.length - failed.length} checks passed, ${failed.length + problems.length} failed`,
  );
  return {
    passed: checks.length - failed.length,
    failed: failed.length + problems.length,
    // The kernel died before the guest's init ran (a TCG boot flake: no project code had run yet).
    bootPanic: !booted && /Kernel panic/.test(console_),
  };
}

/**
 * A bar over the scenarios for a person at a terminal (stdout and stderr terminals, not under CI, as
 * the CLI's progress.ts decides); every line the harness prints goes above it. Otherwise nothing
 * changes: the [vm] lines are the log CI keeps.
 */
function progress(total) {
  const ci = process.env.CI !== undefined && !['', '0', 'false'].includes(process.env.CI.toLowerCase());
  if (ci || !process.stdout.isTTY || !process.stderr.isTTY) return { update() {}, done() {}, stop() {} };
  const multi = new cliProgress.MultiBar(
    {
      format:
        'vm {bar} {value}/{total} scenarios · {scenario} · checks passed {passed}, failed {failed} · {duration_formatted}',
      stream: process.stderr,
      hideCursor: true,
      clearOnComplete: true,
      fps: 2,
    },
    cliProgress.Presets.shades_classic,
  );
  const bar = multi.create(total, 0, { scenario: '', passed: 0, failed: 0 });
  const out = console.log;
  const err = console.error;
  console.log = (...a) => multi.log(`${a.join(' ')}\n`);
  console.error = (...a) => multi.log(`${a.join(' ')}\n`);
  return {
    update: (fields) => bar.update(fields),
    done: (fields) => bar.increment(1, fields),
    stop() {
      multi.stop();
      console.log = out;
      console.error = err;
    },
  };
}

/**
 * The guests run the daemon as an ordinary user (uid 4242) from this checkout, shared over 9p with the
 * host's permissions: every directory above the project must let others search it. A clone in a
 * `mktemp -d` folder (mode 0700) does not, and the daemon's spawn of node fails with EACCES. Give such a
 * folder, when it is ours, search permission (x) for others only: no one can list or read it through that.
 */
function letTheGuestUserReachTheProject() {
  for (let d = root; d !== dirname(d); d = dirname(d)) {
    const st = statSync(d);
    if (st.mode & 0o001) continue;
    if (st.uid !== process.getuid?.())
      throw new Error(
        `${d}: others may not search it (mode ${(st.mode & 0o777).toString(8)}), so the guest's daemon test (uid 4242) cannot reach the project: chmod o+x ${d}`,
      );
    chmodSync(d, (st.mode & 0o7777) | 0o001);
    log(
      `${d}: gave others search permission (o+x) so that the guest's unprivileged daemon (uid 4242) can reach the project`,
    );
  }
}

async function main() {
  mkdirSync(work, { recursive: true });
  letTheGuestUserReachTheProject();
  const names = process.argv.slice(2).filter((a) => !a.startsWith('-'));
  const scenarios = await loadScenarios(names);
  const kernels = kernelsToRun();
  let passed = 0;
  let failed = 0;
  const bar = progress(kernels.length * scenarios.length);
  for (const kver of kernels) {
    for (const s of scenarios) {
      bar.update({ scenario: `${s.name} on ${kver}`, passed, failed });
      try {
        let r = await runScenario(s, kver);
        if (r.bootPanic) {
          log(`[${s.name} on ${kver}] the kernel panicked before the guest's init ran: booting once more`);
          r = await runScenario(s, kver);
        }
        passed += r.passed;
        failed += r.failed;
      } catch (err) {
        console.error(`[vm] ${s.name} on ${kver}: ${err.stack ?? err}`);
        failed++;
      }
      bar.done({ passed, failed });
    }
  }
  bar.stop();
  log(
    `total ${((Date.now() - started) / 1000).toFixed(1)} s, scenarios ${scenarios.map((s) => s.name).join(', ')} on ${kernels.join(', ')}`,
  );
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}

main().catch((err) => {
  console.error(`[vm] ${err.stack ?? err}`);
  console.log('0 passed, 1 failed');
  process.exit(1);
});
