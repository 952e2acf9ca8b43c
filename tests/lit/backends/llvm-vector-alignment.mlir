// RUN: lathe-opt %s -t llvm --target-options='-mcpu=znver4' | filecheck %s

// What a vector access may assume of its alignment: an argument is 16-byte aligned
// (ARGUMENT_ALIGN, numpy's guarantee, so callers' arrays run in place), a buffer the kernel
// allocates is 64-byte aligned; lane 0's offset counts too. A packed weight read
// (origin + lane) // 32, (origin + lane) % 32 with the origin computed outside the vector
// loop as a multiple of 32 is one contiguous vector load, not a gather left to LLVM's loop
// vectorizer.
// CHECK-LABEL: define void @packed_tile(ptr noalias nocapture align 16 %a0, ptr noalias nocapture align 16 %a1)
// CHECK:       %[[TILE:.*]] = alloca [32 x float], align 64
// CHECK:       load <16 x float>, ptr %{{.*}}, align 16
// CHECK:       store <16 x float> %{{.*}}, ptr %{{.*}}, align 64
// CHECK:       load <16 x float>, ptr %{{.*}}, align 64
// CHECK:       store <16 x float> %{{.*}}, ptr %{{.*}}, align 16
// CHECK-NOT:   llvm.loop.vectorize
func.func private @packed_tile(%w: memref<4x8x32xf32>, %out: memref<8x128xf32>) attributes {lathe.kernel} {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c4 = arith.constant 4 : index
  %c8 = arith.constant 8 : index
  %c32 = arith.constant 32 : index
  scf.for %k = %c0 to %c8 step %c1 {
    scf.for %t = %c0 to %c4 step %c1 {
      %origin = arith.muli %t, %c32 : index
      %tile = memref.alloca() {alignment = 64 : i64} : memref<32xf32>
      scf.for %j = %c0 to %c32 step %c1 {
        %jj = arith.addi %origin, %j : index
        %q = arith.floordivsi %jj, %c32 : index
        %r = arith.remsi %jj, %c32 : index
        %v = memref.load %w[%q, %k, %r] : memref<4x8x32xf32>
        memref.store %v, %tile[%j] : memref<32xf32>
      } {loop.annotation = #loop.annotation<vectorize = 32>}
      scf.for %j = %c0 to %c32 step %c1 {
        %jj = arith.addi %origin, %j : index
        %v = memref.load %tile[%j] : memref<32xf32>
        memref.store %v, %out[%k, %jj] : memref<8x128xf32>
      } {loop.annotation = #loop.annotation<vectorize = 32>}
    }
  }
  func.return
}
