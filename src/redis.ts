/** `chatter/redis`: a Redis cluster backend, so several Chatter servers act as one. */
export { type RedisClusterOptions, redisCluster } from "./cluster/redis.ts";
export type { ClusterBackend, ClusterListener, ClusterStats, LogEntry, LogPosition, LogRead } from "./server/cluster.ts";
