// Storage values: JSON stays JSON; everything else structured clone allows round-trips exactly.
import assert from "node:assert/strict";
import { test } from "node:test";

import { serialize, deserialize, DataCloneError } from "../runtime/values.js";

const text = (bytes) => new TextDecoder().decode(bytes);

test("JSON-able values are stored as plain JSON text", () => {
  for (const v of [0, 1.5, -3, "s", true, null, [1, "a", null], { a: { b: [1] } }, []]) {
    const bytes = serialize(v);
    assert.equal(text(bytes), JSON.stringify(v));
    assert.deepEqual(deserialize(bytes), v);
  }
});

test("values beyond JSON round-trip exactly", () => {
  const values = [
    undefined,
    NaN,
    Infinity,
    -Infinity,
    -0,
    12345678901234567890n,
    new Date(Date.UTC(2024, 1, 29)),
    new Date(NaN),
    new Map([["a", 1], [{ k: 1 }, new Set([2])]]),
    new Set([1, "x", 2n]),
    new Uint8Array([0, 1, 2, 255]),
    new Int32Array([-1, 2]),
    new Float64Array([0.5]),
    new Uint8Array([7, 8, 9]).buffer,
    /a+b/gi,
    new RangeError("far"),
    [1, undefined, 3],
    { nested: { d: new Date(5), u: undefined } },
    Object(5),
    Object("s"),
  ];
  for (const v of values) {
    const bytes = serialize(v);
    assert.equal(bytes[0], 1, "tagged form");
    const back = deserialize(bytes);
    if (v instanceof Error) {
      assert.equal(back.constructor, v.constructor);
      assert.equal(back.message, v.message);
    } else if (v instanceof ArrayBuffer) {
      assert.deepEqual(new Uint8Array(back), new Uint8Array(v));
    } else if (v instanceof Date && Number.isNaN(v.getTime())) {
      assert.ok(Number.isNaN(back.getTime()));
    } else {
      assert.deepEqual(back, v);
    }
  }
  assert.ok(Object.is(deserialize(serialize(-0)), -0));
});

test("a typed array view over part of a buffer keeps only its bytes", () => {
  const buffer = new Uint8Array([1, 2, 3, 4, 5, 6]).buffer;
  const back = deserialize(serialize(new Uint8Array(buffer, 2, 3)));
  assert.deepEqual([...back], [3, 4, 5]);
});

test("unclonable values throw DataCloneError", () => {
  class Point {
    x = 1;
  }
  const cyclic = { a: 1 };
  cyclic.self = cyclic;
  for (const v of [() => 1, Symbol("s"), new Point(), cyclic, { f() {} }, [new WeakMap()]]) {
    assert.throws(() => serialize(v), DataCloneError);
  }
});

test("an object reached twice (not a cycle) is copied twice", () => {
  const shared = { x: 1 };
  assert.deepEqual(deserialize(serialize({ a: shared, b: shared, d: new Date(0) })), {
    a: { x: 1 },
    b: { x: 1 },
    d: new Date(0),
  });
});

test("JSON written by other SDKs reads back", () => {
  const bytes = new TextEncoder().encode('{"count":5,"tags":["a"]}');
  assert.deepEqual(deserialize(bytes), { count: 5, tags: ["a"] });
});
