import { dlopen, ptr, type Pointer } from "bun:ffi";
import { createCipheriv } from "node:crypto";
import { AEAD_KEY_BYTES, AEAD_NONCE_BYTES, AEAD_TAG_BYTES, type InPlaceAead, type InPlaceAeadFactory } from "./core/aead.ts";
import { aes256gcmInPlace, checkInPlaceRegions } from "./aes-gcm.ts";

/**
 * AES-256-GCM in place from OpenSSL's libcrypto (the system's libcrypto.so.3), called through bun:ffi.
 *
 * Why: node:crypto cannot give a cipher a new IV, so every datagram costs a createCipheriv (~1.5 µs
 * per 1,374-byte datagram on this machine, each side); a GiB at a 1,500-byte MTU is ~780,000 datagrams,
 * over the ≤ 1.0 CPU-s/GiB budget of issue #17. Here each InPlaceAead keeps one EVP_CIPHER_CTX per
 * direction, keyed (AES key schedule expanded) once; a datagram re-initialises only the IV
 * (EVP_EncryptInit_ex(ctx, NULL, NULL, NULL, iv)) and runs update/final/tag on the caller's buffer,
 * in place, with no allocation on the JS side. Measured by bench/aead-in-place.ts on this 2-core VM
 * (34-byte aad; medians of 15 rounds, best in brackets), CPU µs per datagram:
 *
 *   1,374 B: seal 0.90 (0.68), open 0.81 (0.68) = 0.64–0.70 CPU-s/GiB; node:crypto 1.92 (1.64), 2.03 (1.79)
 *   8,192 B: seal 2.03 (1.92), open 2.18 (1.91);  node:crypto 3.30 (2.86), 3.51 (2.83)
 *
 * Taking ptr() of the nonce each call costs ~0.01 µs (caching it by array identity measured within the
 * noise), so it is not cached; the whole wrapper (region checks, two ptr() calls) costs ~0.1 µs over a
 * bare loop of the same five C calls.
 *
 * Only on Linux; the library is checked by a known-answer test against node:crypto when it loads.
 * Anything missing or wrong (no libcrypto, another ABI, a failed self-test), or FTX_NO_NATIVE_AEAD=1,
 * and `loadNativeAes256Gcm` returns undefined: callers use `bestInPlaceAead`, which falls back to
 * node:crypto (src/crypto/aes-gcm.ts).
 */

/** openssl/evp.h: EVP_CTRL_AEAD_GET_TAG / EVP_CTRL_AEAD_SET_TAG (the GCM names are aliases). */
const EVP_CTRL_GCM_GET_TAG = 0x10;
const EVP_CTRL_GCM_SET_TAG = 0x11;
/** Tried in order: the OpenSSL 3 soname, then whatever the unversioned development link points at. */
const LIBRARY_NAMES = ["libcrypto.so.3", "libcrypto.so"];

const SIGNATURES = {
  OpenSSL_version: { args: ["i32"], returns: "cstring" },
  ERR_clear_error: { args: [], returns: "void" },
  EVP_aes_256_gcm: { args: [], returns: "ptr" },
  EVP_CIPHER_CTX_new: { args: [], returns: "ptr" },
  EVP_CIPHER_CTX_free: { args: ["ptr"], returns: "void" },
  EVP_CIPHER_CTX_ctrl: { args: ["ptr", "i32", "i32", "ptr"], returns: "i32" },
  EVP_EncryptInit_ex: { args: ["ptr", "ptr", "ptr", "ptr", "ptr"], returns: "i32" },
  EVP_EncryptUpdate: { args: ["ptr", "ptr", "ptr", "ptr", "i32"], returns: "i32" },
  EVP_EncryptFinal_ex: { args: ["ptr", "ptr", "ptr"], returns: "i32" },
  EVP_DecryptInit_ex: { args: ["ptr", "ptr", "ptr", "ptr", "ptr"], returns: "i32" },
  EVP_DecryptUpdate: { args: ["ptr", "ptr", "ptr", "ptr", "i32"], returns: "i32" },
  EVP_DecryptFinal_ex: { args: ["ptr", "ptr", "ptr"], returns: "i32" },
} as const;

type Libcrypto = ReturnType<typeof dlopen<typeof SIGNATURES>>["symbols"];

/** undefined: not tried yet; null: tried, not usable here. */
let loaded: InPlaceAeadFactory | null | undefined;
let liveContexts = 0;

/**
 * A factory of InPlaceAead over libcrypto, or undefined where there is none that passes the self-test,
 * off Linux, or with FTX_NO_NATIVE_AEAD=1. Never throws. The library is loaded and tested once.
 */
export function loadNativeAes256Gcm(): InPlaceAeadFactory | undefined {
  if (process.env.FTX_NO_NATIVE_AEAD === "1") return undefined;
  loaded ??= load();
  return loaded ?? undefined;
}

/** The native implementation where it loads, else node:crypto's; `native` says which (for `--verbose` and tests). */
export function bestInPlaceAead(): { factory: InPlaceAeadFactory; native: boolean } {
  const native = loadNativeAes256Gcm();
  return native ? { factory: native, native: true } : { factory: aes256gcmInPlace, native: false };
}

/** EVP_CIPHER_CTX pairs made and not yet freed (by dispose or the FinalizationRegistry): for tests. */
export function liveNativeAeadContexts(): number {
  return liveContexts;
}

function load(): InPlaceAeadFactory | null {
  if (process.platform !== "linux") return null;
  for (const name of LIBRARY_NAMES) {
    try {
      const { symbols } = dlopen(name, SIGNATURES);
      const version = /OpenSSL (\S+)/.exec(String(symbols.OpenSSL_version(0)))?.[1] ?? "unknown version";
      const factory = makeFactory(symbols, `AES-256-GCM (OpenSSL libcrypto ${version})`);
      if (selfTest(factory)) return factory;
    } catch {
      // not there, a symbol missing (not OpenSSL ≥ 1.1), or FFI unavailable: try the next name
    }
  }
  return null;
}

function makeFactory(S: Libcrypto, name: string): InPlaceAeadFactory {
  const cipher = pointer(S.EVP_aes_256_gcm());
  if (!cipher) throw new Error("EVP_aes_256_gcm returned NULL");
  // Frees the contexts of an InPlaceAead that was collected without dispose() (a session that ended).
  const registry = new FinalizationRegistry<[Pointer, Pointer]>(([enc, dec]) => {
    S.EVP_CIPHER_CTX_free(enc);
    S.EVP_CIPHER_CTX_free(dec);
    liveContexts--;
  });

  return (keyBytes: Uint8Array): InPlaceAead => {
    if (keyBytes.byteLength !== AEAD_KEY_BYTES) throw new RangeError(`AES-256-GCM needs a ${AEAD_KEY_BYTES}-byte key, not ${keyBytes.byteLength}`);
    const encCtx = pointer(S.EVP_CIPHER_CTX_new());
    const decCtx = pointer(S.EVP_CIPHER_CTX_new());
    if (!encCtx || !decCtx || S.EVP_EncryptInit_ex(encCtx, cipher, null, keyBytes, null) !== 1 || S.EVP_DecryptInit_ex(decCtx, cipher, null, keyBytes, null) !== 1) {
      if (encCtx) S.EVP_CIPHER_CTX_free(encCtx);
      if (decCtx) S.EVP_CIPHER_CTX_free(decCtx);
      S.ERR_clear_error();
      throw new Error(`${name}: could not set up a cipher context`);
    }
    // null once disposed
    let enc: Pointer | null = encCtx;
    let dec: Pointer | null = decCtx;
    liveContexts++;
    // Per call, only numbers cross: the out-length cell and a scratch for final() (GCM writes nothing
    // there) are allocated here, once, and their addresses taken once.
    const outLength = new Int32Array(1);
    const pOutLength = ptr(outLength);
    const pScratch = ptr(new Uint8Array(AEAD_TAG_BYTES));
    const failed = (what: string): never => {
      S.ERR_clear_error();
      throw new Error(`${name}: ${what} failed`);
    };

    const aead: InPlaceAead = {
      name,
      sealInPlace(nonce, buf, aadAt, aadLength, at, length, tagAt) {
        if (!enc) throw new Error(`${name}: used after dispose()`);
        checkInPlaceRegions(nonce, buf, aadAt, aadLength, at, length, tagAt);
        const base = ptr(buf);
        if (S.EVP_EncryptInit_ex(enc, null, null, null, ptr(nonce)) !== 1) failed("EVP_EncryptInit_ex");
        if (aadLength > 0 && S.EVP_EncryptUpdate(enc, null, pOutLength, (base + aadAt) as Pointer, aadLength) !== 1) failed("EVP_EncryptUpdate (aad)");
        if (length > 0) {
          const data = (base + at) as Pointer;
          if (S.EVP_EncryptUpdate(enc, data, pOutLength, data, length) !== 1 || outLength[0] !== length) failed("EVP_EncryptUpdate");
        }
        if (S.EVP_EncryptFinal_ex(enc, pScratch, pOutLength) !== 1) failed("EVP_EncryptFinal_ex");
        if (S.EVP_CIPHER_CTX_ctrl(enc, EVP_CTRL_GCM_GET_TAG, AEAD_TAG_BYTES, (base + tagAt) as Pointer) !== 1) failed("EVP_CTRL_GCM_GET_TAG");
      },
      openInPlace(nonce, buf, aadAt, aadLength, at, length, tagAt) {
        if (!dec) throw new Error(`${name}: used after dispose()`);
        checkInPlaceRegions(nonce, buf, aadAt, aadLength, at, length, tagAt);
        const base = ptr(buf);
        const data = (base + at) as Pointer;
        const ok =
          S.EVP_DecryptInit_ex(dec, null, null, null, ptr(nonce)) === 1 &&
          (aadLength === 0 || S.EVP_DecryptUpdate(dec, null, pOutLength, (base + aadAt) as Pointer, aadLength) === 1) &&
          (length === 0 || (S.EVP_DecryptUpdate(dec, data, pOutLength, data, length) === 1 && outLength[0] === length)) &&
          S.EVP_CIPHER_CTX_ctrl(dec, EVP_CTRL_GCM_SET_TAG, AEAD_TAG_BYTES, (base + tagAt) as Pointer) === 1 &&
          S.EVP_DecryptFinal_ex(dec, pScratch, pOutLength) === 1; // 1: the tag verified
        // OpenSSL 3.0 queues no error for a tag that fails, but nothing may ever pile up in the
        // thread's error queue, datagram after forged datagram.
        if (!ok) S.ERR_clear_error();
        return ok;
      },
      dispose() {
        if (!enc || !dec) return;
        registry.unregister(aead);
        S.EVP_CIPHER_CTX_free(enc);
        S.EVP_CIPHER_CTX_free(dec);
        enc = dec = null;
        liveContexts--;
      },
    };
    registry.register(aead, [encCtx, decCtx], aead);
    return aead;
  };
}

/** A returned C pointer as Bun gives it (a number; its types also allow a bigint, which it never is here), or null. */
function pointer(p: Pointer | bigint | null): Pointer | null {
  return typeof p === "number" && p !== 0 ? p : null;
}

/**
 * A known answer, computed with node:crypto now: a body of 100 bytes (whole blocks and a partial one)
 * sealed at an offset with 21 bytes of aad, and an empty body, must match byte for byte; both must open;
 * a tag with one bit flipped must not. False at the first thing that differs.
 */
function selfTest(factory: InPlaceAeadFactory): boolean {
  const key = Uint8Array.from({ length: AEAD_KEY_BYTES }, (_, i) => i);
  const nonce = Uint8Array.from({ length: AEAD_NONCE_BYTES }, (_, i) => 0xa0 + i);
  const aad = Uint8Array.from({ length: 21 }, (_, i) => 0x30 + i);
  const aead = factory(key);
  try {
    for (const plaintext of [Uint8Array.from({ length: 100 }, (_, i) => (i * 7 + 3) & 0xff), new Uint8Array(0)]) {
      const c = createCipheriv("aes-256-gcm", key, nonce);
      c.setAAD(aad);
      const expected = Buffer.concat([c.update(plaintext), c.final(), c.getAuthTag()]);
      // [3 spare][aad][body][tag][2 spare]: offsets that are not 0 nor aligned.
      const aadAt = 3;
      const at = aadAt + aad.byteLength;
      const tagAt = at + plaintext.byteLength;
      const buf = new Uint8Array(tagAt + AEAD_TAG_BYTES + 2);
      buf.set(aad, aadAt);
      buf.set(plaintext, at);
      aead.sealInPlace(nonce, buf, aadAt, aad.byteLength, at, plaintext.byteLength, tagAt);
      if (!expected.equals(buf.subarray(at, tagAt + AEAD_TAG_BYTES))) return false;
      const sealed = buf.slice();
      if (!aead.openInPlace(nonce, buf, aadAt, aad.byteLength, at, plaintext.byteLength, tagAt)) return false;
      if (!Buffer.from(plaintext).equals(buf.subarray(at, tagAt))) return false;
      sealed[tagAt + 5]! ^= 0x10;
      if (aead.openInPlace(nonce, sealed, aadAt, aad.byteLength, at, plaintext.byteLength, tagAt)) return false;
    }
    return true;
  } finally {
    aead.dispose?.();
  }
}
