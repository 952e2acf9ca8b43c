// RUN: lathe-opt %s -t llvm | filecheck %s

// Kernels take noalias, 64-byte aligned buffers and address them with GEPs;
// parallel loops are outlined for GOMP_parallel; vectorize/unroll become loop
// metadata; each kernel gets a packed entry point.
// CHECK-DAG: declare void @GOMP_parallel(ptr, ptr, i32, i32)
// CHECK-LABEL: define internal void @axpy__par0_body(
// CHECK:       getelementptr inbounds float, ptr %c{{[0-9]+}}, i64
// CHECK:       fmul reassoc contract float
// CHECK:       br label %{{.*}}, !llvm.loop ![[LOOP:[0-9]+]]
// CHECK-LABEL: define internal void @axpy__par0(ptr noalias nocapture readonly %ctx)
// CHECK:       call i32 @omp_get_thread_num()
// CHECK:       call void @axpy__par0_body(
// CHECK-LABEL: define void @axpy(ptr noalias nocapture align 64 %a0, ptr noalias nocapture align 64 %a1, ptr noalias nocapture align 64 %a2)
// CHECK:       call void @GOMP_parallel(ptr @axpy__par0, ptr %{{.*}}, i32 0, i32 0)
// CHECK-LABEL: define void @axpy__packed(ptr %args)
// CHECK:       call void @axpy(ptr %p0, ptr %p1, ptr %p2)
// CHECK:       ![[LOOP]] = distinct !{![[LOOP]], ![[EN:[0-9]+]], ![[W:[0-9]+]]}
func.func private @axpy(%x: memref<64x16xf32>, %y: memref<64x16xf32>, %out: memref<64x16xf32>) attributes {lathe.kernel} {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c16 = arith.constant 16 : index
  %c64 = arith.constant 64 : index
  %two = arith.constant 2.0 : f32
  scf.for %i = %c0 to %c64 step %c1 {
    scf.for %j = %c0 to %c16 step %c1 {
      %a = memref.load %x[%i, %j] : memref<64x16xf32>
      %b = memref.load %y[%i, %j] : memref<64x16xf32>
      %s = arith.mulf %a, %two : f32
      %r = arith.addf %s, %b : f32
      memref.store %r, %out[%i, %j] : memref<64x16xf32>
    } {loop.annotation = #loop.annotation<vectorize = 16>}
  } {loop.annotation = #loop.annotation<parallel>}
  func.return
}
