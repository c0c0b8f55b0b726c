/**
 * Colonies cryptography: secp256k1 keys, SHA3-256 ids and recoverable signatures.
 * Facts (colonies-protocol.md): the id of a key is SHA3-256 over the HEX TEXT of the uncompressed public key;
 * a signature is deterministic low-S ECDSA over SHA3-256(base64 payload text), sent as hex r||s||v with v LAST.
 */
import { secp256k1 } from "@noble/curves/secp256k1.js";
import { sha3_256 } from "@noble/hashes/sha3.js";
import { bytesToHex, hexToBytes, utf8ToBytes } from "@noble/hashes/utils.js";

const PRIVATE_KEY = /^[0-9a-f]{64}$/;

// Every request is signed: a larger precomputed table of base-point multiples halves the cost of a signature.
secp256k1.Point.BASE.precompute(8, false);

export function isPrivateKey(value: string): boolean {
  return PRIVATE_KEY.test(value);
}

function keyBytes(privateKey: string): Uint8Array {
  if (!isPrivateKey(privateKey)) throw new TypeError("a private key must be 64 lowercase hex characters");
  return hexToBytes(privateKey);
}

export function generatePrivateKey(): string {
  return bytesToHex(secp256k1.utils.randomSecretKey());
}

/** Uncompressed public key (04||X||Y) as hex. */
export function publicKey(privateKey: string): string {
  return bytesToHex(secp256k1.getPublicKey(keyBytes(privateKey), false));
}

/** The id Colonies derives from a key: colony id, executor id, user id, server id. */
export function idOf(privateKey: string): string {
  return bytesToHex(sha3_256(utf8ToBytes(publicKey(privateKey))));
}

/** Signs a payload string (for requests, the base64 text) and returns the 65-byte wire signature as hex. */
export function sign(payload: string, privateKey: string): string {
  const digest = sha3_256(utf8ToBytes(payload));
  // noble's 'recovered' format puts the recovery byte first; Colonies wants it last.
  const recovered = secp256k1.sign(digest, keyBytes(privateKey), { prehash: false, format: "recovered" });
  const wire = new Uint8Array(65);
  wire.set(recovered.subarray(1), 0);
  wire[64] = recovered[0] as number;
  return bytesToHex(wire);
}
