import { describe, expect, it } from "vitest";
import { coerce, parseArguments } from "../../src/executor/args.js";
import type { ArgSpec, FunctionDef } from "../../src/executor/types.js";

const deploy: FunctionDef = {
  name: "deploy",
  description: "",
  args: [
    { name: "deploymentname", type: "string", description: "" },
    { name: "pods", type: "int", min: 0, max: 10, description: "" },
    { name: "ramdisk", type: "bool", description: "" },
  ],
  kwargs: [{ name: "dryrun", type: "bool", description: "" }],
  handler: async () => [],
};

describe("coerce", () => {
  const int: ArgSpec = { name: "n", type: "int", min: 0, description: "" };
  it.each([
    ["2", 2],
    [" 7 ", 7],
    [0, 0],
    ["+3", 3],
  ])("accepts %j as an int", (input, expected) => {
    expect(coerce("f", int, input)).toBe(expected);
  });
  it.each(["2.5", "abc", "", "-1", "1e3", "0x10", 2.5, -1, true, null, "99999999999999999999"])(
    "rejects %j as an int",
    (input) => {
      expect(() => coerce("f", int, input)).toThrow(/f: argument n must be a whole number >= 0, got/);
    },
  );
  const bool: ArgSpec = { name: "b", type: "bool", description: "" };
  it.each([
    ["true", true],
    ["false", false],
    ["TRUE", true],
    [false, false],
  ])("accepts %j as a bool", (input, expected) => {
    expect(coerce("f", bool, input)).toBe(expected);
  });
  it.each(["yes", "1", 1, "", "t"])("rejects %j as a bool", (input) => {
    expect(() => coerce("f", bool, input)).toThrow(/must be "true" or "false"/);
  });
  it("rejects empty strings and values outside an enum", () => {
    const s: ArgSpec = { name: "s", type: "string", enum: ["a", "b"], description: "" };
    expect(() => coerce("f", s, "")).toThrow(/one of a, b/);
    expect(() => coerce("f", s, "c")).toThrow(/one of a, b, got "c"/);
    expect(coerce("f", s, "a")).toBe("a");
  });
});

describe("parseArguments", () => {
  it("takes positional arguments in signature order", () => {
    expect(parseArguments(deploy, ["web", "2", "true"], {})).toEqual({
      deploymentname: "web",
      pods: 2,
      ramdisk: true,
    });
  });
  it("takes arguments by name and kwargs-only extras", () => {
    expect(
      parseArguments(deploy, [], { ramdisk: "false", pods: 3, deploymentname: "x", dryrun: "true" }),
    ).toEqual({
      deploymentname: "x",
      pods: 3,
      ramdisk: false,
      dryrun: true,
    });
  });
  it("mixes positions and names", () => {
    expect(parseArguments(deploy, ["web"], { pods: "1", ramdisk: "true" })).toMatchObject({ pods: 1 });
  });
  it("names the missing argument and the signature", () => {
    expect(() => parseArguments(deploy, ["web"], {})).toThrow(
      "deploy: missing argument pods (a whole number from 0 to 10); signature deploy(deploymentname, pods, ramdisk)",
    );
  });
  it("rejects too many arguments", () => {
    expect(() => parseArguments(deploy, ["a", "1", "true", "x"], {})).toThrow(/at most 3 arguments.*got 4/);
  });
  it("rejects unknown kwargs listing the accepted ones", () => {
    expect(() => parseArguments(deploy, ["a", "1", "true"], { replicas: "2" })).toThrow(
      "deploy: unknown argument replicas; accepted: deploymentname, pods, ramdisk, dryrun",
    );
  });
  it("rejects an argument given twice", () => {
    expect(() => parseArguments(deploy, ["a", "1", "true"], { pods: "1" })).toThrow(/pods given both/);
  });
  it("treats null args as none and rejects non-list args", () => {
    expect(() => parseArguments(deploy, null, {})).toThrow(/missing argument deploymentname/);
    expect(() => parseArguments(deploy, "web", {})).toThrow(/args must be a list/);
  });
});
