// RUN: lathe-opt %s --split-input-file -t llvm --target-options='-mcpu=znver4' | filecheck %s

// Kernels take noalias buffers, 16-byte aligned (numpy's guarantee: ARGUMENT_ALIGN), and
// address them with GEPs; parallel loops are outlined into a worker over a range of
// iterations that lathe_parallel_for (the thread pool, defined in the same module) runs; a
// vectorized loop becomes explicit <16 x float> code, its accesses to arguments aligned as
// the arguments are; each kernel gets a packed entry point.
// CHECK-LABEL: define internal void @axpy__par0_body(
// CHECK:       getelementptr inbounds float, ptr %cap.{{[0-9]+}}, i64
// CHECK:       load <16 x float>, ptr %{{.*}}, align 16
// CHECK:       fmul reassoc contract <16 x float> %{{.*}}, %{{.*}}
// CHECK:       store <16 x float> %{{.*}}, ptr %{{.*}}, align 16
// CHECK-LABEL: define internal void @axpy__par0(ptr noalias nocapture readonly %ctx, i64 %begin, i64 %end)
// CHECK:       mul nsw i64 %begin, 1
// CHECK:       call void @axpy__par0_body(
// CHECK-LABEL: define void @axpy(ptr noalias nocapture align 16 %a0, ptr noalias nocapture align 16 %a1, ptr noalias nocapture align 16 %a2)
// CHECK:       call void @lathe_parallel_for(ptr @axpy__par0, ptr %{{.*}}, i64 %{{.*}})
// CHECK-LABEL: define void @axpy__packed(ptr %args)
// CHECK:       call void @axpy(ptr %p0, ptr %p1, ptr %p2)
// CHECK:       define void @lathe_parallel_for(ptr %f, ptr %cx, i64 %trip)
func.func private @axpy(%x: memref<4096x256xf32>, %y: memref<4096x256xf32>, %out: memref<4096x256xf32>) attributes {lathe.kernel} {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c256 = arith.constant 256 : index
  %c4096 = arith.constant 4096 : index
  %two = arith.constant 2.0 : f32
  scf.for %i = %c0 to %c4096 step %c1 {
    scf.for %j = %c0 to %c256 step %c1 {
      %a = memref.load %x[%i, %j] : memref<4096x256xf32>
      %b = memref.load %y[%i, %j] : memref<4096x256xf32>
      %s = arith.mulf %a, %two : f32
      %r = arith.addf %s, %b : f32
      memref.store %r, %out[%i, %j] : memref<4096x256xf32>
    } {loop.annotation = #loop.annotation<vectorize = 16>}
  } {loop.annotation = #loop.annotation<parallel>}
  func.return
}

// -----
// A reduction into one address gets a vector accumulator and a horizontal fold;
// a short unrolled loop is emitted once per iteration.
// CHECK-LABEL: define void @rowsum(
// CHECK:       store float 0x0000000000000000, ptr %{{.*}}
// CHECK:       store float 0x0000000000000000, ptr %{{.*}}
// CHECK:       %[[ACC:.*]] = load float, ptr
// CHECK:       fadd reassoc contract <16 x float> <float 0x8000000000000000
// CHECK:       call reassoc contract float @llvm.vector.reduce.fadd.v16f32(float %[[ACC]], <16 x float>
func.func private @rowsum(%x: memref<2x64xf32>, %out: memref<2xf32>) attributes {lathe.kernel} {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c2 = arith.constant 2 : index
  %c64 = arith.constant 64 : index
  %zero = arith.constant 0.0 : f32
  scf.for %i = %c0 to %c2 step %c1 {
    memref.store %zero, %out[%i] : memref<2xf32>
  } {loop.annotation = #loop.annotation<unroll>}
  scf.for %i = %c0 to %c2 step %c1 {
    scf.for %k = %c0 to %c64 step %c1 {
      %a = memref.load %x[%i, %k] : memref<2x64xf32>
      %s = memref.load %out[%i] : memref<2xf32>
      %r = arith.addf %s, %a : f32
      memref.store %r, %out[%i] : memref<2xf32>
    } {loop.annotation = #loop.annotation<vectorize = 64>}
  }
  func.return
}

// -----
// A strided (gathering) access is left to LLVM's loop vectorizer, with metadata.
// CHECK-LABEL: define void @colcopy(
// CHECK:       br label %{{.*}}, !llvm.loop ![[LOOP:[0-9]+]]
// CHECK-DAG:   ![[LOOP]] = distinct !{![[LOOP]], ![[EN:[0-9]+]], ![[W:[0-9]+]]}
// CHECK-DAG:   ![[EN]] = !{!"llvm.loop.vectorize.enable", i1 true}
func.func private @colcopy(%x: memref<64x2xf32>, %out: memref<64xf32>) attributes {lathe.kernel} {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c64 = arith.constant 64 : index
  scf.for %k = %c0 to %c64 step %c1 {
    %a = memref.load %x[%k, %c0] : memref<64x2xf32>
    memref.store %a, %out[%k] : memref<64xf32>
  } {loop.annotation = #loop.annotation<vectorize = 64>}
  func.return
}

// -----
// A parallel loop with too little work to pay for waking a worker runs on the caller.
// CHECK-LABEL: define void @tiny(
// CHECK-NOT:   call void @lathe_parallel_for
// CHECK:       ret void
func.func private @tiny(%x: memref<64xf32>, %out: memref<64xf32>) attributes {lathe.kernel} {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c64 = arith.constant 64 : index
  scf.for %i = %c0 to %c64 step %c1 {
    %a = memref.load %x[%i] : memref<64xf32>
    %b = arith.addf %a, %a : f32
    memref.store %b, %out[%i] : memref<64xf32>
  } {loop.annotation = #loop.annotation<parallel>}
  func.return
}
