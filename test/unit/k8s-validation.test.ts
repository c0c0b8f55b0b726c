import { describe, expect, it } from "vitest";
import {
  deploymentNameProblem,
  executorTypeProblem,
  imageProblem,
  parseQuantity,
  podNameProblem,
  quantityProblem,
} from "../../src/executors/k8s/validation.js";

describe("deployment names", () => {
  it.each(["web", "a", "sleep-2", "x".repeat(46), "0abc"])("accepts %s", (name) => {
    expect(deploymentNameProblem(name)).toBeUndefined();
  });
  it.each([
    ["Web", /lower-case/],
    ["-web", /starting and ending/],
    ["web-", /starting and ending/],
    ["we_b", /lower-case/],
    ["we.b", /lower-case/],
    ["", /lower-case/],
    ["x".repeat(47), /47 characters; at most 46/],
  ])("rejects %j", (name, message) => {
    expect(deploymentNameProblem(name)).toMatch(message);
  });
});

describe("image references", () => {
  it.each([
    "busybox",
    "busybox:1.36",
    "library/busybox:latest",
    "registry.example.com:5000/team/executor:1.2.3",
    "ghcr.io/colonyos/executors@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    "localhost/executor:dev_1",
  ])("accepts %s", (image) => {
    expect(imageProblem(image)).toBeUndefined();
  });
  it.each([
    "",
    "Busybox",
    "busybox:",
    "busy box",
    "busybox:tag with space",
    "-busybox",
    "a//b",
    "busybox@sha256:xyz",
    ":tag",
  ])("rejects %j", (image) => {
    expect(imageProblem(image)).toMatch(/not a valid image reference/);
  });
});

describe("pod names, executor types and quantities", () => {
  it("checks pod names", () => {
    expect(podNameProblem("web-5d9c7b8f6d-x2x9z")).toBeUndefined();
    expect(podNameProblem("Web_1")).toBe('"Web_1" is not a valid pod name');
  });
  it("checks executor types", () => {
    expect(executorTypeProblem("sleep.v2_x-1")).toBeUndefined();
    expect(executorTypeProblem("no spaces")).toMatch(/executortype "no spaces" must be/);
  });
  it.each([
    ["250m", 0.25],
    ["1", 1],
    ["0.5", 0.5],
    [".5", 0.5],
    ["512Mi", 512 * 2 ** 20],
    ["2Gi", 2 * 2 ** 30],
    ["1e3", 1000],
    ["1k", 1000],
  ])("reads quantity %s", (text, value) => {
    expect(parseQuantity(text)).toBeCloseTo(value);
  });
  it.each(["", "lots", "1GB", "-1", "1..2", "Mi"])("rejects quantity %j", (text) => {
    expect(parseQuantity(text)).toBeUndefined();
    expect(quantityProblem("cpu", text)).toMatch(/not a Kubernetes quantity/);
  });
  it("bounds quantities: more than zero, at most the operator's maximum", () => {
    const max = { value: 4, text: "4" };
    expect(quantityProblem("cpu", "250m", max)).toBeUndefined();
    expect(quantityProblem("cpu", "4", max)).toBeUndefined();
    expect(quantityProblem("cpu", "0", max)).toBe('cpu "0" must be more than zero');
    expect(quantityProblem("cpu", "1e9", max)).toBe('cpu "1e9" is more than the largest allowed, 4');
    expect(quantityProblem("cpu", "4001m", max)).toMatch(/more than the largest allowed/);
  });
});
