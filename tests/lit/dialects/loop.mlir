// RUN: lathe-opt %s | filecheck %s
// RUN: lathe-opt %s --print-op-generic | lathe-opt | filecheck %s

// CHECK: } {loop.annotation = #loop.annotation<parallel>}
// CHECK: } {loop.annotation = #loop.annotation<vectorize = 16>}
// CHECK: } {loop.annotation = #loop.annotation<unroll = 4>}
// CHECK: } {loop.annotation = #loop.annotation<unroll>}
// CHECK: } {loop.annotation = #loop.annotation<bind = "threadIdx.x">}
func.func @annotated(%m: memref<16xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c16 = arith.constant 16 : index
  scf.for %i = %c0 to %c16 step %c1 {
  } {loop.annotation = #loop.annotation<parallel>}
  scf.for %i = %c0 to %c16 step %c1 {
  } {loop.annotation = #loop.annotation<vectorize = 16>}
  scf.for %i = %c0 to %c16 step %c1 {
  } {loop.annotation = #loop.annotation<unroll = 4>}
  scf.for %i = %c0 to %c16 step %c1 {
  } {loop.annotation = #loop.annotation<unroll>}
  scf.for %i = %c0 to %c16 step %c1 {
  } {loop.annotation = #loop.annotation<bind = "threadIdx.x">}
  func.return
}
