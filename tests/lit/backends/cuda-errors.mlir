// RUN: not lathe-opt %s -t cuda 2>&1 | filecheck %s

// A barrier waits for every thread of the block, so it may only sit where the whole block
// reaches it: inside a threadIdx loop it is the kernel's error, named.
// CHECK: error: kernel @bad_barrier: gpu.barrier inside a loop bound to threadIdx.x
// CHECK-NEXT: a barrier waits for every thread of the block: only at block-uniform positions
func.func private @bad_barrier(%x: memref<128xf32>) attributes {lathe.kernel} {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c128 = arith.constant 128 : index
  %one = arith.constant 1.0 : f32
  scf.for %t = %c0 to %c128 step %c1 {
    memref.store %one, %x[%t] : memref<128xf32>
    "gpu.barrier"() : () -> ()
  } {loop.annotation = #loop.annotation<bind = "threadIdx.x">}
  func.return
}
