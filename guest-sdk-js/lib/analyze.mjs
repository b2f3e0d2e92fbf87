// Reads a Durable Object class's RPC surface from its TypeScript (or JSDoc) signatures.
//
// A Durable Object class is an exported class that extends `DurableObject` (directly or through
// any chain of the project's own base classes), or — the classic form — any exported class a
// binding names (`constructor(state, env)`, reached through `fetch`, alarms and WebSockets only:
// Cloudflare gives RPC to `DurableObject` subclasses alone).
//
// Every public method of a `DurableObject` subclass (not `fetch`, `alarm`, the WebSocket
// handlers, the constructor, or a name starting with `_`) whose signature has a WIT form becomes
// a WIT function of the class's interface. Types map as documented in guest-sdk-js/README.md; a
// method without that form (untyped JavaScript, `any`, a helper taking a socket) is not a typed
// RPC method, and the analysis says which and why (`skipped`) instead of failing the build.

import path from "node:path";
import ts from "typescript";

import { isRpcName } from "../runtime/rpc-names.js";

/** Properties DurableObject sets on every instance: a method of that name would be shadowed. */
const RESERVED = new Set(["ctx", "env"]);

/** The SDK's branded number types (`import type { u32 } from "wasmdo"`). */
const INT_TYPES = {
  u8: [0, 0xff],
  u16: [0, 0xffff],
  u32: [0, 0xffffffff],
  s8: [-0x80, 0x7f],
  s16: [-0x8000, 0x7fff],
  s32: [-0x80000000, 0x7fffffff],
};
const BIGINT_TYPES = new Set(["u64", "s64"]);
const FLOAT_TYPES = new Set(["f32", "f64"]);

export class AnalysisError extends Error {}

/** `userName` → `user-name`, `HTTPServer` → `http-server`, `user_name` → `user-name`. */
export function kebab(name) {
  const words = name
    .replace(/([a-z0-9])([A-Z])/g, "$1 $2")
    .replace(/([A-Z]+)([A-Z][a-z])/g, "$1 $2")
    .split(/[^A-Za-z0-9]+/)
    .filter(Boolean)
    .map((w) => w.toLowerCase());
  // every WIT word must start with a letter: glue a leading-digit word to the previous one
  const merged = [];
  for (const w of words) {
    if (/^[0-9]/.test(w) && merged.length > 0) merged[merged.length - 1] += w;
    else merged.push(w);
  }
  const out = merged.join("-");
  if (!/^[a-z][a-z0-9]*(-[a-z][a-z0-9]*)*$/.test(out)) {
    throw new AnalysisError(`\`${name}\` cannot be a WIT name: use letters and digits, starting with a letter`);
  }
  return out;
}

/** `user-name` → `userName`: how componentize-js names a WIT item in JavaScript. */
export function camel(kebabName) {
  return kebabName.replace(/-([a-z0-9])/g, (_, c) => c.toUpperCase());
}

/**
 * Finds the Durable Object class `className` (or the only one) exported by `entry` and describes
 * its RPC methods: `{ className, interfaceName, methods: [{ name, wit, params, result }], types }`.
 * `sdkTypes` is the SDK's `runtime/index.d.ts`, which `cloudflare:workers` and `wasmdo` resolve to.
 * `files` lists every source file the analysis read (for the build cache).
 */
export function analyze({ entry, className, sdkTypes }) {
  const options = {
    allowJs: true,
    checkJs: false,
    noEmit: true,
    strict: true,
    skipLibCheck: true,
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.ESNext,
    moduleResolution: ts.ModuleResolutionKind.Bundler,
    lib: ["lib.es2022.d.ts", "lib.dom.d.ts"],
    types: [],
    paths: { "cloudflare:workers": [sdkTypes], wasmdo: [sdkTypes] },
  };
  const program = ts.createProgram([entry], options);
  const checker = program.getTypeChecker();
  const source = program.getSourceFile(entry);
  if (!source) throw new AnalysisError(`cannot read ${entry}`);

  const moduleSymbol = checker.getSymbolAtLocation(source);
  const exported = moduleSymbol ? checker.getExportsOfModule(moduleSymbol) : [];
  const found = exportedClasses(checker, exported);
  const objects = found.filter((c) => c.kind === "durable-object");
  const listed = () => found.map((c) => `${c.exportName} (${KIND_TEXT[c.kind]})`).join(", ");
  let chosen;
  if (className) {
    chosen = found.find((c) => c.exportName === className || c.declaredName === className);
    if (!chosen) {
      const others = found.length > 0 ? `it exports ${found.map((c) => c.exportName).join(", ")}` : "it exports no class";
      throw new AnalysisError(`${entry} exports no Durable Object class \`${className}\`; ${others}`);
    }
    if (chosen.kind === "entrypoint") {
      throw new AnalysisError(
        `${entry}: ${chosen.exportName} extends ${chosen.base}, which is not a Durable Object: extend DurableObject, or write a plain class with constructor(state, env)`,
      );
    }
  } else if (objects.length === 1) {
    chosen = objects[0];
  } else if (objects.length > 1) {
    throw new AnalysisError(
      `${entry} exports several Durable Object classes (${objects.map((c) => c.exportName).join(", ")}): choose one with --class`,
    );
  } else {
    // no DurableObject subclass: the classic form, if the module exports exactly one
    const classic = found.filter((c) => c.kind === "classic");
    if (classic.length === 1) chosen = classic[0];
    else if (classic.length > 1) {
      throw new AnalysisError(
        `${entry} exports several classes that could be Durable Objects (${classic.map((c) => c.exportName).join(", ")}): choose one with --class`,
      );
    } else {
      const worker = exported.some((s) => s.name === "default") ? " (to build its default export, a Worker, use --worker)" : "";
      const seen = found.length > 0 ? `; it exports ${listed()}` : "";
      throw new AnalysisError(
        `${entry} exports no Durable Object class: export a class that extends DurableObject ` +
          `(import { DurableObject } from "cloudflare:workers"), or a class with constructor(state, env) and fetch()${worker}${seen}`,
      );
    }
  }

  const types = new TypeTable(checker);
  const classSymbol = (chosen.declaration.name && checker.getSymbolAtLocation(chosen.declaration.name)) ?? chosen.declaration.symbol;
  const instanceType = checker.getDeclaredTypeOfSymbol(classSymbol);
  const methods = [];
  const skipped = [];
  const witNames = new Map();
  const properties = chosen.kind === "durable-object" ? checker.getPropertiesOfType(instanceType) : [];
  for (const property of properties) {
    const declaration = property.valueDeclaration ?? property.declarations?.[0];
    if (!declaration || !ts.isMethodDeclaration(declaration)) continue;
    if (isSdkFile(declaration.getSourceFile().fileName, sdkTypes)) continue;
    const name = property.name;
    if (!isRpcName(name)) continue;
    const modifiers = ts.getCombinedModifierFlags(declaration);
    if (modifiers & (ts.ModifierFlags.Private | ts.ModifierFlags.Protected | ts.ModifierFlags.Static)) continue;
    if (ts.isPrivateIdentifier(declaration.name)) continue;

    const where = `${chosen.exportName}.${name}`;
    if (RESERVED.has(name)) {
      throw new AnalysisError(`${where}: a method cannot be called \`${name}\`: DurableObject's this.${name} hides it; rename it`);
    }
    const wit = wrap(() => kebab(name), where);
    if (witNames.has(wit)) {
      throw new AnalysisError(`${where} and ${chosen.exportName}.${witNames.get(wit)} both become the WIT function \`${wit}\`: rename one`);
    }
    witNames.set(wit, name);

    // a method whose signature has no WIT form is not a typed RPC method; the types it
    // registered on the way are forgotten with it
    const before = new Map(types.named);
    try {
      methods.push(describeMethod(checker, types, property, declaration, where, name, wit));
    } catch (e) {
      if (!(e instanceof AnalysisError)) throw e;
      types.named = before;
      witNames.delete(wit);
      skipped.push({ name, why: e.message });
    }
  }
  methods.sort((a, b) => a.wit.localeCompare(b.wit));

  const files = program
    .getSourceFiles()
    .map((f) => f.fileName)
    .filter((f) => !program.isSourceFileDefaultLibrary(program.getSourceFile(f)));
  return {
    className: chosen.exportName,
    kind: chosen.kind,
    interfaceName: wrap(() => kebab(chosen.exportName), `class ${chosen.exportName}`),
    methods,
    skipped,
    types: types.named,
    files,
  };
}

/** One RPC method's WIT shape; an `AnalysisError` says why it has none. */
function describeMethod(checker, types, property, declaration, where, name, wit) {
  {
    const type = checker.getTypeOfSymbolAtLocation(property, declaration);
    const signatures = type.getCallSignatures();
    if (signatures.length !== 1) {
      throw new AnalysisError(`${where} has ${signatures.length} signatures (overloads): an RPC method needs exactly one`);
    }
    const signature = signatures[0];
    const params = signature.getParameters().map((param) => {
      const paramDecl = param.valueDeclaration;
      const pwhere = `parameter \`${param.name}\` of ${where}`;
      if (paramDecl && ts.isParameter(paramDecl) && paramDecl.dotDotDotToken) {
        throw new AnalysisError(`${pwhere}: rest parameters cannot cross RPC; take an array instead`);
      }
      const optional = !!paramDecl && ts.isParameter(paramDecl) && (!!paramDecl.questionToken || !!paramDecl.initializer);
      let ptype = checker.getTypeOfSymbolAtLocation(param, paramDecl ?? declaration);
      const desc = types.describe(ptype, pwhere, kebab(param.name), { optionalAlready: optional });
      return {
        name: param.name,
        wit: wrap(() => kebab(param.name), pwhere),
        desc: optional && desc.k !== "option" ? { k: "option", of: desc, none: "undefined" } : desc,
      };
    });
    const returned = checker.getAwaitedType(signature.getReturnType()) ?? signature.getReturnType();
    const result = types.describeResult(returned, `the result of ${where}`, `${wit}-result`);
    return { name, wit, params, result };
  }
}

function wrap(f, where) {
  try {
    return f();
  } catch (e) {
    if (e instanceof AnalysisError) throw new AnalysisError(`${where}: ${e.message}`);
    throw e;
  }
}

function isSdkFile(fileName, sdkTypes) {
  return path.dirname(path.resolve(fileName)) === path.dirname(path.resolve(sdkTypes));
}

const KIND_TEXT = {
  "durable-object": "a DurableObject",
  classic: "a plain class",
  entrypoint: "not a Durable Object",
};

/** Base classes that make a class something other than a Durable Object. */
const ENTRYPOINTS = new Set(["WorkerEntrypoint", "WorkflowEntrypoint"]);

/**
 * The module's exported classes, once each however many names export them (`export class A` and
 * `export default A` are one class, named `A`): `{ exportName, declaredName, declaration, kind,
 * base }`, `kind` being `durable-object` (extends DurableObject through any chain), `entrypoint`
 * (extends a Worker entrypoint) or `classic` (anything else).
 */
function exportedClasses(checker, exported) {
  const byDeclaration = new Map();
  for (const symbol of exported) {
    const target = symbol.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(symbol) : symbol;
    if (!(target.flags & ts.SymbolFlags.Class)) continue;
    const declaration = target.declarations?.find(ts.isClassLike);
    if (!declaration) continue;
    const known = byDeclaration.get(declaration);
    // a real name beats `default`
    if (known && known.exportName !== "default") continue;
    const base = rootBase(checker, declaration, new Set());
    const kind = base === "DurableObject" ? "durable-object" : ENTRYPOINTS.has(base) ? "entrypoint" : "classic";
    byDeclaration.set(declaration, {
      exportName: symbol.name,
      declaredName: declaration.name?.text ?? null,
      declaration,
      kind,
      base,
    });
  }
  return [...byDeclaration.values()];
}

/**
 * The name of the SDK base class `declaration` extends (`DurableObject`, `WorkerEntrypoint`, …),
 * following its `extends` clauses through the project's own classes, imports and re-exports;
 * `null` if it extends none.
 */
function rootBase(checker, declaration, seen) {
  if (seen.has(declaration)) return null;
  seen.add(declaration);
  for (const clause of declaration.heritageClauses ?? []) {
    if (clause.token !== ts.SyntaxKind.ExtendsKeyword) continue;
    for (const expr of clause.types) {
      let symbol = checker.getSymbolAtLocation(expr.expression);
      if (symbol && symbol.flags & ts.SymbolFlags.Alias) symbol = checker.getAliasedSymbol(symbol);
      const name = symbol?.name ?? expr.expression.getText();
      if (name === "DurableObject" || ENTRYPOINTS.has(name)) return name;
      const base = symbol?.declarations?.find(ts.isClassLike);
      if (base) {
        const found = rootBase(checker, base, seen);
        if (found) return found;
      }
      // a mixin or an expression: the checker's view of its instance type
      const type = checker.getTypeAtLocation(expr);
      const named = chainName(checker, type, new Set());
      if (named) return named;
    }
  }
  return null;
}

function chainName(checker, type, seen) {
  if (!type || seen.has(type)) return null;
  seen.add(type);
  const name = type.symbol?.name;
  if (name === "DurableObject" || ENTRYPOINTS.has(name)) return name;
  const bases = type.isClassOrInterface?.() ? checker.getBaseTypes(type) : [];
  for (const b of bases) {
    const found = chainName(checker, b, seen);
    if (found) return found;
  }
  return null;
}

const SUPPORTED =
  "number, string, boolean, bigint, Uint8Array, arrays, tuples, string-literal unions, " +
  "interfaces/object types of these, `T | undefined` / `T | null`, and the SDK's u8…s64/f32 aliases";

/** Turns TypeScript types into descriptors and collects the named WIT types they need. */
class TypeTable {
  constructor(checker) {
    this.checker = checker;
    /** name → { kind: "record" | "enum", desc, key } in first-use order */
    this.named = new Map();
  }

  describeResult(type, where, fallbackName) {
    if (type.flags & (ts.TypeFlags.Void | ts.TypeFlags.Undefined)) return { k: "unit" };
    return this.describe(type, where, fallbackName, {});
  }

  describe(type, where, fallbackName, { optionalAlready }) {
    const checker = this.checker;
    const alias = type.aliasSymbol?.name;
    if (alias && type.aliasSymbol.declarations?.some((d) => /runtime[\\/]index\.d\.ts$/.test(d.getSourceFile().fileName))) {
      if (alias in INT_TYPES) return { k: "int", wit: alias, range: INT_TYPES[alias] };
      if (BIGINT_TYPES.has(alias)) return { k: "bigint", wit: alias };
      if (FLOAT_TYPES.has(alias)) return { k: "f64", wit: alias };
    }
    const f = type.flags;
    if (f & (ts.TypeFlags.Any | ts.TypeFlags.Unknown)) {
      throw new AnalysisError(
        `${where} has no type (any/unknown): give it a TypeScript type or a JSDoc @param/@returns; supported: ${SUPPORTED}`,
      );
    }
    if (f & ts.TypeFlags.Boolean || f & ts.TypeFlags.BooleanLiteral) return { k: "bool" };
    if (f & (ts.TypeFlags.Number | ts.TypeFlags.NumberLiteral)) return { k: "f64", wit: "f64" };
    if (f & (ts.TypeFlags.String | ts.TypeFlags.StringLiteral)) return { k: "string" };
    if (f & (ts.TypeFlags.BigInt | ts.TypeFlags.BigIntLiteral)) return { k: "bigint", wit: "s64" };
    if (type.isUnion()) {
      let members = type.types;
      const hasUndefined = members.some((m) => m.flags & (ts.TypeFlags.Undefined | ts.TypeFlags.Void));
      const hasNull = members.some((m) => m.flags & ts.TypeFlags.Null);
      members = members.filter((m) => !(m.flags & (ts.TypeFlags.Undefined | ts.TypeFlags.Void | ts.TypeFlags.Null)));
      let inner;
      if (members.length === 0) {
        throw new AnalysisError(`${where} is always null/undefined: it carries nothing`);
      } else if (members.length === 1) {
        inner = this.describe(members[0], where, fallbackName, {});
      } else if (members.every((m) => m.flags & ts.TypeFlags.BooleanLiteral)) {
        inner = { k: "bool" };
      } else if (members.every((m) => m.flags & ts.TypeFlags.StringLiteral)) {
        inner = this.enumType(type, members, where, fallbackName);
      } else if (members.every((m) => m.flags & ts.TypeFlags.NumberLiteral)) {
        inner = { k: "f64", wit: "f64" };
      } else {
        throw new AnalysisError(
          `${where} is a union (${checker.typeToString(type)}); only \`T | undefined\`, \`T | null\` and unions of string literals can cross RPC`,
        );
      }
      if (!hasUndefined && !hasNull) return inner;
      if (inner.k === "option") {
        throw new AnalysisError(`${where}: an optional value cannot itself be optional`);
      }
      return { k: "option", of: inner, none: hasNull && !hasUndefined ? "null" : "undefined" };
    }
    if (checker.isTupleType(type)) {
      const elements = checker.getTypeArguments(type);
      return { k: "tuple", of: elements.map((e, i) => this.describe(e, `${where} (element ${i})`, `${fallbackName}-${i}`, {})) };
    }
    if (checker.isArrayType(type)) {
      const [element] = checker.getTypeArguments(type);
      return { k: "list", of: this.describe(element, `${where} (element)`, `${fallbackName}-item`, {}) };
    }
    const symbolName = type.symbol?.name;
    if (symbolName === "Uint8Array") return { k: "bytes" };
    if (symbolName === "Promise") {
      throw new AnalysisError(`${where} is a Promise: only a method's result may be one`);
    }
    if (["Date", "Map", "Set", "ArrayBuffer", "RegExp", "Function"].includes(symbolName) || type.getCallSignatures().length > 0) {
      throw new AnalysisError(`${where} is a ${symbolName ?? "function"}, which has no WIT type; supported: ${SUPPORTED}`);
    }
    if (f & ts.TypeFlags.Object) return this.recordType(type, where, fallbackName);
    throw new AnalysisError(`${where} has type ${checker.typeToString(type)}, which has no WIT type; supported: ${SUPPORTED}`);
  }

  typeName(type, fallbackName) {
    const name = type.aliasSymbol?.name ?? type.symbol?.name;
    return name && !name.startsWith("__") ? kebab(name) : fallbackName;
  }

  enumType(type, members, where, fallbackName) {
    const name = this.typeName(type, fallbackName);
    const cases = members.map((m) => [m.value, wrap(() => kebab(m.value), `${where} (case "${m.value}")`)]);
    return this.register(name, "enum", { k: "enum", name, cases }, JSON.stringify(cases), where);
  }

  recordType(type, where, fallbackName) {
    const checker = this.checker;
    if (type.getStringIndexType() || type.getNumberIndexType()) {
      throw new AnalysisError(`${where} has an index signature (a dictionary); use an array of [key, value] tuples`);
    }
    const name = this.typeName(type, fallbackName);
    const existing = this.named.get(name);
    if (existing?.building) return existing.desc; // recursion: WIT has no recursive types
    const desc = { k: "record", name, fields: [] };
    this.named.set(name, { kind: "record", desc, key: null, building: true });
    const props = checker.getPropertiesOfType(type);
    if (props.length === 0) throw new AnalysisError(`${where} (${name}) has no fields; a WIT record needs at least one`);
    for (const prop of props) {
      const decl = prop.valueDeclaration ?? prop.declarations?.[0];
      const fwhere = `field \`${prop.name}\` of ${where}`;
      const optional = !!(prop.flags & ts.SymbolFlags.Optional);
      const ftype = checker.getTypeOfSymbolAtLocation(prop, decl);
      const witName = wrap(() => kebab(prop.name), fwhere);
      let fdesc = this.describe(ftype, fwhere, `${name}-${witName}`, {});
      if (fdesc === desc) throw new AnalysisError(`${fwhere}: a record cannot contain itself (WIT has no recursive types)`);
      if (optional && fdesc.k !== "option") fdesc = { k: "option", of: fdesc, none: "undefined" };
      desc.fields.push({ ts: prop.name, wit: witName, js: camel(witName), desc: fdesc });
    }
    this.named.delete(name);
    return this.register(name, "record", desc, JSON.stringify(desc), where);
  }

  register(name, kind, desc, key, where) {
    const existing = this.named.get(name);
    if (existing) {
      if (existing.key !== key) {
        throw new AnalysisError(`${where}: two different types are both named \`${name}\` in WIT; rename one`);
      }
      return existing.desc;
    }
    this.named.set(name, { kind, desc, key });
    return desc;
  }
}
