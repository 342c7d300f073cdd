#!/usr/bin/env node
/**
 * TypeScript types for the `greed` comm, generated from the protocol schema
 * (greed_kernel/frontends/protocol.schema.json): one type per definition, the params and result
 * of every method, the params of every event, and the lists of names and error codes.
 *
 *   node scripts/protocol-types.js           write src/protocol.ts (`jlpm protocol`)
 *   node scripts/protocol-types.js --check   fail when src/protocol.ts is not current
 *
 * test/protocol.spec.ts runs the check with jest, so `jlpm test` (and CI's
 * scripts/check_labextension.sh) fails on a schema change without regenerated types.
 * It understands the part of JSON Schema the protocol uses: type, const, enum, $ref,
 * oneOf/anyOf, properties/required/additionalProperties, items, description.
 */
'use strict';

const fs = require('fs');
const path = require('path');

const ROOT = path.resolve(__dirname, '..');
const SCHEMA = path.resolve(
  ROOT,
  '..',
  'greed_kernel',
  'frontends',
  'protocol.schema.json'
);
const OUTPUT = path.join(ROOT, 'src', 'protocol.ts');

const HEADER = `/**
 * The \`greed\` comm's messages (JSON-RPC 2.0), generated from
 * greed_kernel/frontends/protocol.schema.json by scripts/protocol-types.js: do not edit.
 * \`jlpm protocol\` regenerates this file; test/protocol.spec.ts checks it is current.
 */
`;

/** "execution:cleanup" -> "ExecutionCleanup". */
function pascal(name) {
  return name
    .split(/[^A-Za-z0-9]+/)
    .filter(Boolean)
    .map(part => part[0].toUpperCase() + part.slice(1))
    .join('');
}

function isEmptyObject(schema) {
  return (
    schema.type === 'object' &&
    Object.keys(schema.properties || {}).length === 0 &&
    schema.additionalProperties === false
  );
}

function isInterface(schema) {
  return schema.type === 'object' && !isEmptyObject(schema);
}

function doc(description, indent = '') {
  if (!description) {
    return '';
  }
  return `${indent}/** ${description.replace(/\*\//g, '*\\/')} */\n`;
}

function propertyKey(name) {
  return /^[A-Za-z_$][A-Za-z0-9_$]*$/.test(name) ? name : JSON.stringify(name);
}

class Generator {
  constructor(schema) {
    this.schema = schema;
    this.defs = schema.$defs || {};
    this.out = [];
  }

  /** The name a definition gets: IName for an interface, Name otherwise. */
  defName(name) {
    return isInterface(this.defs[name]) ? `I${name}` : name;
  }

  /** A type expression for `schema`. */
  type(schema) {
    if (schema.$ref) {
      const match = /^#\/\$defs\/(.+)$/.exec(schema.$ref);
      if (!match || !(match[1] in this.defs)) {
        throw new Error(`unsupported $ref ${schema.$ref}`);
      }
      return this.defName(match[1]);
    }
    if ('const' in schema) {
      return JSON.stringify(schema.const);
    }
    if (schema.enum) {
      return schema.enum.map(v => JSON.stringify(v)).join(' | ');
    }
    const union = schema.oneOf || schema.anyOf;
    if (union) {
      return union.map(s => this.type(s)).join(' | ');
    }
    if (Array.isArray(schema.type)) {
      return schema.type
        .map(t => this.type({ ...schema, type: t }))
        .join(' | ');
    }
    switch (schema.type) {
      case 'string':
        return 'string';
      case 'integer':
      case 'number':
        return 'number';
      case 'boolean':
        return 'boolean';
      case 'null':
        return 'null';
      case 'array': {
        const item = schema.items ? this.type(schema.items) : 'unknown';
        return /[ |]/.test(item) ? `Array<${item}>` : `${item}[]`;
      }
      case 'object':
        return isEmptyObject(schema)
          ? 'Record<string, never>'
          : `{\n${this.members(schema, '  ')}}`;
      case undefined:
        return 'unknown';
      default:
        throw new Error(`unsupported type ${schema.type}`);
    }
  }

  /** The members of an object type, one per line. */
  members(schema, indent) {
    const required = new Set(schema.required || []);
    let text = '';
    for (const [name, prop] of Object.entries(schema.properties || {})) {
      const optional = required.has(name) ? '' : '?';
      text += doc(prop.description, indent);
      text += `${indent}${propertyKey(name)}${optional}: ${this.type(prop)};\n`;
    }
    if (
      schema.additionalProperties === undefined ||
      schema.additionalProperties === true
    ) {
      text += `${indent}[key: string]: unknown;\n`;
    } else if (typeof schema.additionalProperties === 'object') {
      text += `${indent}[key: string]: ${this.type(schema.additionalProperties)};\n`;
    }
    return text;
  }

  /** A named type: an interface for an object, an alias otherwise. */
  declare(name, schema) {
    let text = doc(schema.description);
    if (isInterface(schema)) {
      text += `export interface I${name} {\n${this.members(schema, '  ')}}\n`;
    } else {
      text += `export type ${name} = ${this.type(schema)};\n`;
    }
    this.out.push(text);
    return isInterface(schema) ? `I${name}` : name;
  }

  /** A type for a method's params or result, or an event's params: named when inline. */
  named(name, schema) {
    return schema.$ref ? this.type(schema) : this.declare(name, schema);
  }

  generate() {
    this.out.push(HEADER);
    this.out.push(`/** The JSON-RPC version of every message. */
export const JSONRPC = ${JSON.stringify('2.0')};
`);
    for (const [name, schema] of Object.entries(this.defs)) {
      this.declare(name, schema);
    }
    const methods = [];
    for (const [method, spec] of Object.entries(this.schema.methods)) {
      const params = this.named(`${pascal(method)}Params`, spec.params);
      const result = this.named(`${pascal(method)}Result`, spec.result);
      methods.push(
        doc(spec.description, '  ') +
          `  ${propertyKey(method)}: { params: ${params}; result: ${result} };\n`
      );
    }
    const events = [];
    for (const [event, spec] of Object.entries(this.schema.events)) {
      const params = this.named(`${pascal(event)}Params`, spec.params);
      events.push(
        doc(spec.description, '  ') + `  ${propertyKey(event)}: ${params};\n`
      );
    }
    this.out.push(`/** Each method's params and result. */
export interface IGreedMethods {
${methods.join('')}}

/** Each event's params. */
export interface IGreedEvents {
${events.join('')}}

export type GreedMethod = keyof IGreedMethods;
export type GreedEventName = keyof IGreedEvents;

/** Every method, in the schema's order. */
export const GREED_METHODS: readonly GreedMethod[] = ${JSON.stringify(Object.keys(this.schema.methods))};

/** Every event, in the schema's order. */
export const GREED_EVENTS: readonly GreedEventName[] = ${JSON.stringify(Object.keys(this.schema.events))};
`);
    const codes = (this.defs.ErrorCode?.oneOf || []).map(
      c => doc(c.description, '  ') + `  ${c.title}: ${c.const},\n`
    );
    this.out.push(`/** The error codes the kernel answers with. */
export const ERROR_CODES = {
${codes.join('')}} as const;
`);
    return this.out.join('\n');
  }
}

/** The TypeScript source for a protocol schema (before formatting). */
function generate(schema) {
  return new Generator(schema).generate();
}

/** The TypeScript source, formatted as `jlpm prettier` would. */
async function render(schema) {
  const prettier = require('prettier');
  const options = (await prettier.resolveConfig(OUTPUT)) || {};
  return prettier.format(generate(schema), { ...options, filepath: OUTPUT });
}

function readSchema() {
  return JSON.parse(fs.readFileSync(SCHEMA, 'utf-8'));
}

async function main(args) {
  const text = await render(readSchema());
  if (args.includes('--check')) {
    const current = fs.existsSync(OUTPUT)
      ? fs.readFileSync(OUTPUT, 'utf-8')
      : '';
    if (current !== text) {
      console.error(
        `${path.relative(process.cwd(), OUTPUT)} is not generated from the current schema: run \`jlpm protocol\``
      );
      process.exitCode = 1;
    }
    return;
  }
  fs.writeFileSync(OUTPUT, text);
  console.log(`wrote ${path.relative(process.cwd(), OUTPUT)}`);
}

module.exports = { generate, render, readSchema, SCHEMA, OUTPUT };

if (require.main === module) {
  main(process.argv.slice(2)).catch(err => {
    console.error(err);
    process.exitCode = 1;
  });
}
