export * from './opcodes.js';
export * from './messages.js';
export { RpcServer, RpcClient, RpcPool, replyError } from './rpc.js';
export type { Address, Handler, HandlerContext, RpcServerOptions, RpcServerStats, RpcClientOptions, CallOptions, OpcodeStats, RpcPoolOptions } from './rpc.js';
