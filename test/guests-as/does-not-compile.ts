// Deliberately broken: used to test that compile errors are reported.
export function run(): i32 {
  return notDefinedAnywhere;
}
