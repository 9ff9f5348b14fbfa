// The daemon's config file: JSON, validated with a schema; an error names the line and the field.
import { Ajv } from 'ajv';
import type { Limits } from '../grant.ts';

export interface ServiceConfig {
  /** UNIX socket path. */
  socket: string;
  /** Socket file mode, octal string. Default "0660". */
  mode?: string;
  /**
   * Trust store. When set, a trust policy applies to every driver and every reload: packages must be
   * signed by a trusted key; unsigned ones and bare modules load only with allowUnsigned.
   */
  trust?: string;
  /** Limits on clients (daemon.ts ServiceLimits; each has a default). */
  limits?: { maxFrameBytes?: number; maxQueuedCalls?: number; maxConnections?: number; maxUnreadReplyBytes?: number };
  /** The most a manifest may ask for, per limit (default: DEFAULT_LIMIT_CAPS). */
  limitCaps?: Partial<Limits>;
  drivers: {
    name: string;
    /** A .wasm or a package (.wdrv). */
    driver: string;
    device: string;
    sim?: Record<string, unknown>;
    /** Who may call this driver, and who may reload or stop it. Root may always do both. */
    allow?: { call?: { uids?: number[]; gids?: number[] }; admin?: { uids?: number[]; gids?: number[] } };
    /** Allow this driver (by this entry's name) to load without a valid signature. */
    allowUnsigned?: boolean;
    /** The operator's manifest (JSON file): the grant a bare module allowed unsigned runs under. */
    manifest?: string;
  }[];
}

const ids = { type: 'array', items: { type: 'integer', minimum: 0 } };
const who = { type: 'object', additionalProperties: false, properties: { uids: ids, gids: ids } };
const SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['socket', 'drivers'],
  properties: {
    socket: { type: 'string', minLength: 1 },
    mode: { type: 'string', pattern: '^0?[0-7]{3}$' },
    trust: { type: 'string' },
    limits: {
      type: 'object',
      additionalProperties: false,
      properties: {
        maxFrameBytes: { type: 'integer', minimum: 1024 },
        maxQueuedCalls: { type: 'integer', minimum: 1 },
        maxConnections: { type: 'integer', minimum: 1 },
        maxUnreadReplyBytes: { type: 'integer', minimum: 1024 },
      },
    },
    limitCaps: {
      type: 'object',
      additionalProperties: false,
      properties: Object.fromEntries(
        ['memoryPages', 'deadlineMs', 'logPerSec', 'logBurst', 'irqPerSec'].map((k) => [
          k,
          { type: 'integer', minimum: 1 },
        ]),
      ),
    },
    drivers: {
      type: 'array',
      minItems: 1,
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['name', 'driver', 'device'],
        properties: {
          name: { type: 'string', pattern: '^[A-Za-z0-9._-]+$' },
          driver: { type: 'string' },
          device: { type: 'string' },
          sim: { type: 'object' },
          allow: { type: 'object', additionalProperties: false, properties: { call: who, admin: who } },
          allowUnsigned: { type: 'boolean' },
          manifest: { type: 'string' },
        },
      },
    },
  },
} as const;

const validate = new Ajv({ allErrors: true }).compile(SCHEMA);

/** Line of each JSON pointer ("/drivers/0/name") in the text: a small scan that tracks the path. */
function linesOf(text: string): Map<string, number> {
  const lines = new Map<string, number>();
  let i = 0;
  let line = 1;
  const ws = () => {
    while (i < text.length && /\s/.test(text[i])) {
      if (text[i] === '\n') line++;
      i++;
    }
  };
  const str = (): string => {
    const start = i++;
    while (i < text.length && text[i] !== '"') i += text[i] === '\\' ? 2 : 1;
    i++;
    return JSON.parse(text.slice(start, i));
  };
  const value = (path: string): void => {
    ws();
    lines.set(path, line);
    if (text[i] === '{') {
      i++;
      ws();
      while (text[i] !== '}' && i < text.length) {
        ws();
        const key = str();
        ws();
        i++; // :
        value(`${path}/${key}`);
        ws();
        if (text[i] === ',') i++;
        ws();
      }
      i++;
    } else if (text[i] === '[') {
      i++;
      let n = 0;
      ws();
      while (text[i] !== ']' && i < text.length) {
        value(`${path}/${n++}`);
        ws();
        if (text[i] === ',') i++;
        ws();
      }
      i++;
    } else if (text[i] === '"') str();
    else while (i < text.length && !/[,}\]\s]/.test(text[i])) i++;
  };
  value('');
  return lines;
}

export function parseConfig(text: string, file: string): ServiceConfig {
  let c: unknown;
  try {
    c = JSON.parse(text);
  } catch (err) {
    const m = /position (\d+)/.exec((err as Error).message);
    const line = m ? text.slice(0, Number(m[1])).split('\n').length : '?';
    throw new Error(`${file}:${line}: not valid JSON: ${(err as Error).message}`);
  }
  if (!validate(c)) {
    const lines = linesOf(text);
    const msgs = (validate.errors ?? []).map((e) => {
      const extra =
        e.keyword === 'additionalProperties'
          ? (e.params as { additionalProperty: string }).additionalProperty
          : undefined;
      const path = extra ? `${e.instancePath}/${extra}` : e.instancePath;
      const field = path ? path.slice(1).replace(/\//g, '.') : '(top level)';
      return `${file}:${lines.get(path) ?? lines.get(e.instancePath) ?? 1}: ${field}: ${extra ? 'unknown field' : e.message}`;
    });
    throw new Error(msgs.join('\n'));
  }
  return c as ServiceConfig;
}
