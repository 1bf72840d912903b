// Linked into a fully static program by mf_link_static (cmake/static_link.cmake),
// with --wrap=__register_frame_info and --wrap=__deregister_frame_info: crtbeginT.o,
// the start file of a static link, registers the program's .eh_frame with libgcc's
// unwinder at start-up, and the first exception thrown then sorts every FDE of the
// program (~20 ms for the CLI: CLI11 throws for --help, --version and usage errors).
// With nothing registered the unwinder finds FDEs through dl_iterate_phdr and the
// .eh_frame_hdr search table, as in a dynamically linked program.

extern "C" {

void __wrap___register_frame_info(const void* /*begin*/, void* /*object*/) {}

void* __wrap___deregister_frame_info(const void* /*begin*/) { return nullptr; }

}  // extern "C"
