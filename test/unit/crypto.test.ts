import { describe, expect, it } from "vitest";
import { generatePrivateKey, idOf, isPrivateKey, publicKey, sign } from "../../src/colonies/crypto.js";
import { encodePayload } from "../../src/colonies/transport.js";

// Every test vector of colonies-protocol.md (verified there against a real server).
describe("colonies crypto", () => {
  it("derives the id of a key from the hex text of its public key", () => {
    expect(idOf("6d2fb6f546bacfd98c68769e61e0b44a697a30596c018a50e28200aa59b01c0a")).toBe(
      "4fef2b5a82d134d058c1883c72d6d9caf77cd59ca82d73105017590dea3dcb87",
    );
  });

  it("derives the uncompressed public key", () => {
    expect(publicKey("6d2fb6f546bacfd98c68769e61e0b44a697a30596c018a50e28200aa59b01c0a")).toBe(
      "0408e903276ee7973666dceeefa5335e5c4b6b5989821906db98f8de8acf8f853824ca3234a8602200baa2d75f30cb2050cda18602824c3eb2da654a93a01a7ad4",
    );
  });

  it("signs deterministically with the recovery id last", () => {
    expect(sign("hello", "d6eb959e9aec2e6fdc44b5862b269e987b8a4d6f2baca542d8acaa97ee5e74f6")).toBe(
      "e713a1bb015fecabb5a084b0fe6d6e7271fca6f79525a634183cfdb175fe69241f4da161779d8e6b761200e1cf93766010a19072fa778f9643363e2cfadd640900",
    );
  });

  it("encodes a message as padded base64 of its JSON and signs that text", () => {
    const payload = encodePayload({ msgtype: "assignprocessmsg", colonyname: "dev", timeout: 10 });
    expect(payload).toBe(
      "eyJtc2d0eXBlIjoiYXNzaWducHJvY2Vzc21zZyIsImNvbG9ueW5hbWUiOiJkZXYiLCJ0aW1lb3V0IjoxMH0=",
    );
    expect(sign(payload, "ddf7f7791208083b6a9ed975a72684f6406a269cfa36f1b1c32045c0a71fff05")).toBe(
      "eb0ac390e1c1688515c27f7ed7313b251e22c5cdb333177292da0d66186b80ab045098d62e9e2b530a797f9c0fae57d6500ff80fef41f46eef9cf3107faab51101",
    );
  });

  it("matches the public development keys", () => {
    expect(idOf("fcc79953d8a751bf41db661592dc34d30004b1a651ffa0725b03ac227641499d")).toBe(
      "039231c7644e04b6895471dd5335cf332681c54e27f81fac54f9067b3f2c0103",
    );
    expect(idOf("ba949fa134981372d6da62b6a56f336ab4d843b22c02a4257dcf7d0d73097514")).toBe(
      "4787a5071856a4acf702b2ffcea422e3237a679c681314113d86139461290cf4",
    );
    expect(idOf("ddf7f7791208083b6a9ed975a72684f6406a269cfa36f1b1c32045c0a71fff05")).toBe(
      "3fc05cf3df4b494e95d6a3d297a34f19938f7daa7422ab0d4f794454133341ac",
    );
  });

  it("generates valid keys and rejects malformed ones", () => {
    const key = generatePrivateKey();
    expect(isPrivateKey(key)).toBe(true);
    expect(idOf(key)).toMatch(/^[0-9a-f]{64}$/);
    expect(() => idOf("ABC")).toThrow(/64 lowercase hex/);
  });
});
