// autocannon ships no type definitions; bench/lib/autocannon.ts types the part we use.
declare module "autocannon" {
  const autocannon: unknown;
  export default autocannon;
}
