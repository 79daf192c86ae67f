import { describe, expect, test } from "bun:test";
import { cpace, generator } from "../../../src/crypto/cpace.ts";
import { x25519 } from "../../../src/crypto/x25519.ts";
import { hexOf } from "../../support/protocol-vectors.ts";

const hex = (s: string) => Uint8Array.from(Buffer.from(s.replace(/\s+/g, ""), "hex"));

/** draft-irtf-cfrg-cpace, "Test vector for CPace using group ristretto255 and hash SHA-512". */
const DRAFT = {
  prs: new TextEncoder().encode("Password"),
  ci: hex("0a41696e69746961746f720a42726573706f6e646572"),
  sid: hex("7e4b4791d6a8ef019b936c79fb7f2c57"),
  g: "5e25411ca1ad7c9debfd0b33ad987a95cefef2d3f15dcc8bd26415a5dfe2e15a",
  ya: hex("da3d23700a9e5699258aef94dc060dfda5ebb61f02a5ea77fad53f4ff0976d08"),
  Ya: "383a85dd236978f17f8c8545b50dabc52a39fcdab2cf8bc531ce040ff77ca82d",
  yb: hex("d2316b454718c35362d83d69df6320f38578ed5984651435e2949762d900b80d"),
  Yb: "a6206309c0e8e5f579295e35997ac4300ab3fecec3c17f7b604f3e698fa1383c",
  K: "fa1d0318864e2cacb26875f1b791c9ae83204fe8359addb53e95a2e98893853f",
};

describe("CPace on ristretto255 (@noble/curves)", () => {
  test("the draft's vectors: generator, both shares, the shared point", () => {
    expect(hexOf(generator(DRAFT.prs, DRAFT.ci, DRAFT.sid).toBytes())).toBe(DRAFT.g);
    const kx = cpace("Password", new TextDecoder().decode(DRAFT.ci));
    expect(hexOf(kx.share(DRAFT.ya, DRAFT.sid))).toBe(DRAFT.Ya);
    expect(hexOf(kx.share(DRAFT.yb, DRAFT.sid))).toBe(DRAFT.Yb);
    expect(hexOf(kx.complete(DRAFT.ya, DRAFT.sid, hex(DRAFT.Yb))!)).toBe(DRAFT.K);
    expect(hexOf(kx.complete(DRAFT.yb, DRAFT.sid, hex(DRAFT.Ya))!)).toBe(DRAFT.K);
  });

  test("the draft's invalid inputs are refused: a non-canonical encoding and the identity", () => {
    const kx = cpace("Password", "ci");
    expect(kx.complete(DRAFT.ya, DRAFT.sid, hex("2b3c6b8c4f3800e7aef6864025b4ed79bd599117e427c41bd47d93d654b4a51c"))).toBeUndefined();
    expect(kx.complete(DRAFT.ya, DRAFT.sid, new Uint8Array(32))).toBeUndefined();
  });

  test("another token or another channel gives another generator, and the exchange does not agree", () => {
    const a = cpace("token one", "ftx-index");
    const b = cpace("token two", "ftx-index");
    const c = cpace("token one", "ftx-transfer");
    const sid = new Uint8Array(16).fill(1);
    const ya = new Uint8Array(64).fill(2);
    const yb = new Uint8Array(64).fill(3);
    const agree = (x: typeof a, y: typeof a) => hexOf(x.complete(ya, sid, y.share(yb, sid))!) === hexOf(y.complete(yb, sid, x.share(ya, sid))!);
    expect(agree(a, a)).toBe(true);
    expect(agree(a, b)).toBe(false);
    expect(agree(a, c)).toBe(false);
  });
});

describe("X25519 (Bun's native crypto)", () => {
  test("RFC 7748 §6.1: Alice's and Bob's public keys and their shared secret", () => {
    const alice = hex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a");
    const bob = hex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb");
    const sid = new Uint8Array(16);
    expect(hexOf(x25519.share(alice, sid))).toBe("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a");
    expect(hexOf(x25519.share(bob, sid))).toBe("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f");
    expect(hexOf(x25519.complete(alice, sid, x25519.share(bob, sid))!)).toBe("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742");
  });

  test("a low-order share (the all-zero secret) is refused", () => {
    expect(x25519.complete(new Uint8Array(64).fill(9), new Uint8Array(16), new Uint8Array(32))).toBeUndefined();
  });
});
