/**
 * Size of libuv's thread pool, which runs every fs call and every LevelDB read and write of the
 * daemon. The default of 4 threads lets a checkpoint's fdatasyncs or a few slow reads hold up the
 * LevelDB sync writes that stable replies wait for; hanfs uses 16 unless UV_THREADPOOL_SIZE is set.
 * Must be imported before anything uses the pool (libuv reads the variable once, at first use).
 */
export const DEFAULT_THREADPOOL_SIZE = 16;

if (!process.env.UV_THREADPOOL_SIZE) process.env.UV_THREADPOOL_SIZE = String(DEFAULT_THREADPOOL_SIZE);
