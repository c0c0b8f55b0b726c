/** A failed Colonies call: keeps the HTTP status (0 when the server could not be reached) and its message. */
export class ColoniesError extends Error {
  override name = "ColoniesError";
  constructor(
    readonly payloadType: string,
    readonly status: number,
    readonly serverMessage: string,
    options?: ErrorOptions,
  ) {
    super(`${payloadType}: ${status === 0 ? "unreachable" : `HTTP ${status}`}: ${serverMessage}`, options);
  }

  /** 404 on assign means "nothing to do"; elsewhere "not found". */
  get notFound(): boolean {
    return this.status === 404;
  }

  get unreachable(): boolean {
    return this.status === 0;
  }
}
