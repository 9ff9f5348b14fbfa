// The catalogue of simulated device models wasmdrv knows by name ("sim:<name>"). It is the top of
// host/sim: it imports every model, and no model imports it. A wrapper model (faulty, fuzz) names
// the model it wraps by string and is handed simModelClass to find it.
import type { SimModelClass } from './model.ts';
import { edu } from './edu.ts';
import { uart16550 } from './uart16550.ts';
import { e1000 } from './e1000.ts';
import { faulty } from './faulty.ts';
import { bench } from './bench.ts';
import { fuzzModel } from './fuzz.ts';

const MODELS: Record<string, SimModelClass<any>> = {
  edu,
  uart16550,
  e1000,
  bench,
  faulty: faulty(simModelClass),
  fuzz: fuzzModel(simModelClass),
};

export function simModelClass(name: string): SimModelClass<any> {
  const cls = Object.hasOwn(MODELS, name) ? MODELS[name] : undefined; // own names only, never "toString"
  if (!cls) throw new Error(`unknown simulated device model "${name}" (known: ${Object.keys(MODELS).join(', ')})`);
  return cls;
}

export function simModels(): SimModelClass<any>[] {
  return Object.values(MODELS);
}

/** Add a model (tests, the fuzzer, the benchmarks' ring device). */
export function registerSimModel(cls: SimModelClass<any>): void {
  MODELS[cls.name] = cls;
}
