// RUN: lathe-opt %s --split-input-file -t cuda | filecheck %s
// RUN: lathe-opt %s --split-input-file -t cuda --target-options='-arch=sm_90' | filecheck %s --check-prefix=SM90

// A block per row: each thread stages one element in shared memory (an addrspace(3)
// global, .shared in PTX), the block waits at a barrier (bar.sync), then each thread
// reads its neighbour's element. Bound loops are no loops: their induction variables
// are %ctaid.x and %tid.x; the block size is the kernel's .reqntid, and one block per
// multiprocessor is enough (.minnctapersm 1), so ptxas does not spill for occupancy.
// CHECK:       .target sm_80
// CHECK-LABEL: .visible .entry neighbour(
// CHECK-NEXT:    .param .u64 .ptr .global .align 64 neighbour_param_0,
// CHECK-NEXT:    .param .u64 .ptr .global .align 64 neighbour_param_1
// CHECK-NEXT:  )
// CHECK-NEXT:  .reqntid 128, 1, 1
// CHECK-NEXT:  .minnctapersm 1
// CHECK:         .shared .align 16 .b8 neighbour__shared0[512];
// CHECK-DAG:     mov.u32 %r{{[0-9]+}}, %ctaid.x;
// CHECK-DAG:     mov.u32 %r{{[0-9]+}}, %tid.x;
// CHECK:         ld.global.nc.{{[bf]}}32
// CHECK:         st.shared.{{[bf]}}32
// CHECK-NEXT:    bar.sync 0;
// CHECK:         ld.shared.{{[bf]}}32
// CHECK:         st.global.{{[bf]}}32
// SM90:        .target sm_90
func.func private @neighbour(%x: memref<64x128xf32>, %out: memref<64x128xf32>) attributes {lathe.kernel} {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c64 = arith.constant 64 : index
  %c127 = arith.constant 127 : index
  %c128 = arith.constant 128 : index
  scf.for %b = %c0 to %c64 step %c1 {
    %tile = memref.alloca() : memref<128xf32, 3 : i32>
    scf.for %t = %c0 to %c128 step %c1 {
      %v = memref.load %x[%b, %t] : memref<64x128xf32>
      memref.store %v, %tile[%t] : memref<128xf32, 3 : i32>
    } {loop.annotation = #loop.annotation<bind = "threadIdx.x">}
    "gpu.barrier"() : () -> ()
    scf.for %t = %c0 to %c128 step %c1 {
      %n0 = arith.addi %t, %c1 : index
      %n = arith.andi %n0, %c127 : index
      %v = memref.load %tile[%n] : memref<128xf32, 3 : i32>
      %w = memref.load %tile[%t] : memref<128xf32, 3 : i32>
      %s = arith.addf %v, %w : f32
      memref.store %s, %out[%b, %t] : memref<64x128xf32>
    } {loop.annotation = #loop.annotation<bind = "threadIdx.x">}
  } {loop.annotation = #loop.annotation<bind = "blockIdx.x">}
  func.return
}

// -----

// A kernel is a sequence of launches (docs/backends.md, "GPU kernels"): each top-level
// bound loop is one grid, other top-level work one thread; each is its own entry point
// taking all the kernel's buffers, and the kernel's scratch (its top-level memref.alloc)
// is a device global they share. A bound loop with a smaller extent than its launch's
// dimension is guarded: only threads below its extent run it.
// CHECK: .global .align 16 .b8 rowsum__scratch0[64];
// CHECK-LABEL: .visible .entry rowsum__0(
// CHECK:       .reqntid 16, 1, 1
// CHECK:         mov.u32 %r{{[0-9]+}}, %tid.x;
// CHECK:         rowsum__scratch0
// CHECK-LABEL: .visible .entry rowsum__1(
// CHECK:       .reqntid 1, 1, 1
// CHECK-LABEL: .visible .entry rowsum__2(
// CHECK:       .reqntid 32, 1, 1
// CHECK:         mov.u32 %[[TID:r[0-9]+]], %tid.x;
// CHECK:         st.global.{{[bfu]}}32 [%{{rd[0-9]+}}], {{0|%r[0-9]+}};
// CHECK-NEXT:    setp.gt.u32 %[[P:p[0-9]+]], %[[TID]], 15;
// CHECK-NEXT:    @%[[P]] bra
// CHECK:         rowsum__scratch0
func.func private @rowsum(%x: memref<16x8xf32>, %total: memref<1xf32>, %out: memref<2x32xf32>) attributes {lathe.kernel} {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c2 = arith.constant 2 : index
  %c8 = arith.constant 8 : index
  %c16 = arith.constant 16 : index
  %c32 = arith.constant 32 : index
  %zero = arith.constant 0.0 : f32
  %sums = memref.alloc() : memref<16xf32>
  scf.for %t = %c0 to %c16 step %c1 {
    memref.store %zero, %sums[%t] : memref<16xf32>
    scf.for %k = %c0 to %c8 step %c1 {
      %a = memref.load %sums[%t] : memref<16xf32>
      %v = memref.load %x[%t, %k] : memref<16x8xf32>
      %s = arith.addf %a, %v : f32
      memref.store %s, %sums[%t] : memref<16xf32>
    }
  } {loop.annotation = #loop.annotation<bind = "threadIdx.x">}
  memref.store %zero, %total[%c0] : memref<1xf32>
  scf.for %r = %c0 to %c16 step %c1 {
    %a = memref.load %total[%c0] : memref<1xf32>
    %v = memref.load %sums[%r] : memref<16xf32>
    %s = arith.addf %a, %v : f32
    memref.store %s, %total[%c0] : memref<1xf32>
  }
  scf.for %b = %c0 to %c2 step %c1 {
    scf.for %t = %c0 to %c32 step %c1 {
      memref.store %zero, %out[%b, %t] : memref<2x32xf32>
    } {loop.annotation = #loop.annotation<bind = "threadIdx.x">}
    scf.for %t = %c0 to %c16 step %c1 {
      %v = memref.load %sums[%t] : memref<16xf32>
      memref.store %v, %out[%b, %t] : memref<2x32xf32>
    } {loop.annotation = #loop.annotation<bind = "threadIdx.x">}
  } {loop.annotation = #loop.annotation<bind = "blockIdx.x">}
  memref.dealloc %sums : memref<16xf32>
  func.return
}
