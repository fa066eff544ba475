/**
 * Types for the parts of the npm package `stun` (2.1, plain CommonJS, no types of its own) that the STUN
 * responder uses: its message codec. Its `StunServer` is not used (see stun-responder.ts for why).
 */
declare module 'stun' {
  /** A decoded message (`decode`) or one being built (`createMessage`). */
  interface StunMessage {
    readonly type: number
    /** 12 bytes (RFC 5389), or 16 for an RFC 3489 message. */
    readonly transactionId: Buffer
    /** True for an RFC 3489 message, which has no magic cookie. */
    isLegacy(): boolean
    /** Adds XOR-MAPPED-ADDRESS, XORed with the cookie (and the transaction ID for IPv6) on encoding. */
    addXorAddress(address: string, port: number): unknown
    getXorAddress(): { readonly address: string; readonly port: number; readonly family: 'IPv4' | 'IPv6' } | undefined
    toBuffer(): Buffer
  }

  interface StunModule {
    /** Throws on a datagram that is not a well-formed message. */
    decode(message: Buffer): StunMessage
    createMessage(type: number, transactionId?: Buffer): StunMessage
    readonly constants: {
      readonly STUN_BINDING_REQUEST: number
      readonly STUN_BINDING_RESPONSE: number
    }
  }

  const stun: StunModule
  export default stun
}
