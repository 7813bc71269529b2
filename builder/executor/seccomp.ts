/**
 * Our seccomp profile, written as data after moby's default profile
 * (profiles/seccomp/default.json): deny by default with EPERM, allow a fixed
 * list, and open the capability-guarded groups only for capabilities the
 * sandbox actually holds. Unlike some moby releases we never allow io_uring
 * (docs/security.md T1: it bypasses seccomp for the calls it performs), and keyctl,
 * add_key, request_key, userfaultfd and the new mount API stay denied.
 */

export interface SeccompArg {
  readonly index: number;
  readonly value: number;
  readonly valueTwo?: number;
  readonly op: 'SCMP_CMP_NE' | 'SCMP_CMP_EQ' | 'SCMP_CMP_MASKED_EQ';
}

export interface SeccompRule {
  readonly names: readonly string[];
  readonly action: 'SCMP_ACT_ALLOW' | 'SCMP_ACT_ERRNO';
  readonly errnoRet?: number;
  readonly args?: readonly SeccompArg[];
}

export interface SeccompProfile {
  readonly defaultAction: 'SCMP_ACT_ERRNO';
  readonly defaultErrnoRet: number;
  readonly architectures: readonly string[];
  readonly syscalls: readonly SeccompRule[];
}

const EPERM = 1;
const ENOSYS = 38;
/** AF_VSOCK: a guest could reach its hypervisor's services. */
const AF_VSOCK = 40;
/** CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET: no new namespaces without CAP_SYS_ADMIN. */
const CLONE_NAMESPACE_FLAGS = 0x7e020000;

/** Allowed for every process, whatever its capabilities. */
const ALWAYS = `accept accept4 access adjtimex alarm bind brk capget capset chdir chmod chown chown32
clock_adjtime clock_adjtime64 clock_getres clock_getres_time64 clock_gettime clock_gettime64
clock_nanosleep clock_nanosleep_time64 close close_range connect copy_file_range creat dup dup2 dup3
epoll_create epoll_create1 epoll_ctl epoll_ctl_old epoll_pwait epoll_pwait2 epoll_wait epoll_wait_old
eventfd eventfd2 execve execveat exit exit_group faccessat faccessat2 fadvise64 fadvise64_64 fallocate
fanotify_mark fchdir fchmod fchmodat fchown fchown32 fchownat fcntl fcntl64 fdatasync fgetxattr
flistxattr flock fork fremovexattr fsetxattr fstat fstat64 fstatat64 fstatfs fstatfs64 fsync ftruncate
ftruncate64 futex futex_time64 futex_waitv futimesat getcpu getcwd getdents getdents64 getegid getegid32
geteuid geteuid32 getgid getgid32 getgroups getgroups32 getitimer getpeername getpgid getpgrp getpid
getppid getpriority getrandom getresgid getresgid32 getresuid getresuid32 getrlimit get_robust_list
getrusage getsid getsockname getsockopt get_thread_area gettid gettimeofday getuid getuid32 getxattr
inotify_add_watch inotify_init inotify_init1 inotify_rm_watch io_cancel ioctl io_destroy io_getevents
io_pgetevents io_pgetevents_time64 ioprio_get ioprio_set io_setup io_submit ipc kill landlock_add_rule
landlock_create_ruleset landlock_restrict_self lchown lchown32 lgetxattr link linkat listen listxattr
llistxattr _llseek lremovexattr lseek lsetxattr lstat lstat64 madvise membarrier memfd_create
memfd_secret mincore mkdir mkdirat mknod mknodat mlock mlock2 mlockall mmap mmap2 mprotect mq_getsetattr
mq_notify mq_open mq_timedreceive mq_timedreceive_time64 mq_timedsend mq_timedsend_time64 mq_unlink
mremap msgctl msgget msgrcv msgsnd msync munlock munlockall munmap name_to_handle_at nanosleep
newfstatat _newselect open openat openat2 pause pidfd_open pidfd_send_signal pipe pipe2 pkey_alloc
pkey_free pkey_mprotect poll ppoll ppoll_time64 prctl pread64 preadv preadv2 prlimit64 process_mrelease
pselect6 pselect6_time64 pwrite64 pwritev pwritev2 read readahead readlink readlinkat readv recv
recvfrom recvmmsg recvmmsg_time64 recvmsg remap_file_pages removexattr rename renameat renameat2
restart_syscall rmdir rseq rt_sigaction rt_sigpending rt_sigprocmask rt_sigqueueinfo rt_sigreturn
rt_sigsuspend rt_sigtimedwait rt_sigtimedwait_time64 rt_tgsigqueueinfo sched_getaffinity sched_getattr
sched_getparam sched_get_priority_max sched_get_priority_min sched_getscheduler sched_rr_get_interval
sched_rr_get_interval_time64 sched_setaffinity sched_setattr sched_setparam sched_setscheduler
sched_yield seccomp select semctl semget semop semtimedop semtimedop_time64 send sendfile sendfile64
sendmmsg sendmsg sendto setfsgid setfsgid32 setfsuid setfsuid32 setgid setgid32 setgroups setgroups32
setitimer setpgid setpriority setregid setregid32 setresgid setresgid32 setresuid setresuid32 setreuid
setreuid32 setrlimit set_robust_list setsid setsockopt set_thread_area set_tid_address setuid setuid32
setxattr shmat shmctl shmdt shmget shutdown sigaltstack signalfd signalfd4 sigprocmask sigreturn
socketcall socketpair splice stat stat64 statfs statfs64 statx symlink symlinkat sync sync_file_range
syncfs sysinfo tee tgkill time timer_create timer_delete timer_getoverrun timer_gettime timer_gettime64
timer_settime timer_settime64 timerfd_create timerfd_gettime timerfd_gettime64 timerfd_settime
timerfd_settime64 times tkill truncate truncate64 ugetrlimit umask uname unlink unlinkat utime
utimensat utimensat_time64 utimes vfork vmsplice wait4 waitid waitpid write writev
process_vm_readv process_vm_writev ptrace`;

/**
 * Per architecture, as in moby but for x32; keyed by Node's `process.arch`.
 * x32 (64-bit registers, 32-bit pointers) is left out: distribution kernels
 * turn its syscalls off (Debian needs `syscall.x32=y` at boot), images do not
 * ship it, and each architecture in the list is a filter libseccomp builds
 * in runc on every step (~5 ms of a RUN here, bench/run-overhead.mjs). Its
 * calls then match no rule and get the default EPERM. i386 stays: 32-bit
 * programs in amd64 images (and linux/386 builds) are common.
 */
const ARCH_CALLS: Record<string, { arches: string[]; calls: string }> = {
  x64: { arches: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86'], calls: 'arch_prctl modify_ldt' },
  arm64: {
    arches: ['SCMP_ARCH_AARCH64', 'SCMP_ARCH_ARM'],
    calls: 'arm_fadvise64_64 arm_sync_file_range sync_file_range2 breakpoint cacheflush set_tls',
  },
};

/** Calls each capability unlocks (moby's `includes.caps` groups). */
const CAP_CALLS: Record<string, string> = {
  CAP_DAC_READ_SEARCH: 'open_by_handle_at',
  CAP_SYS_ADMIN: `bpf clone clone3 fanotify_init fsconfig fsmount fsopen fspick lookup_dcookie mount
mount_setattr move_mount open_tree perf_event_open quotactl quotactl_fd setdomainname sethostname setns
syslog umount umount2 unshare`,
  CAP_SYS_BOOT: 'reboot',
  CAP_SYS_CHROOT: 'chroot',
  CAP_SYS_MODULE: 'delete_module init_module finit_module',
  CAP_SYS_PACCT: 'acct',
  CAP_SYS_PTRACE: 'kcmp pidfd_getfd process_madvise process_vm_readv process_vm_writev ptrace',
  CAP_SYS_RAWIO: 'iopl ioperm',
  CAP_SYS_TIME: 'settimeofday stime clock_settime clock_settime64',
  CAP_SYS_TTY_CONFIG: 'vhangup',
  CAP_SYS_NICE: 'get_mempolicy mbind set_mempolicy set_mempolicy_home_node',
  CAP_SYSLOG: 'syslog',
  CAP_BPF: 'bpf',
  CAP_PERFMON: 'perf_event_open',
};

const words = (s: string): string[] => s.split(/\s+/).filter((w) => w.length > 0);

/**
 * The profile for a process holding `caps` (its bounding set), on `arch`
 * (default: this host's). Unknown architectures get no architecture list,
 * which libseccomp reads as "native only".
 */
export function seccompProfile(caps: readonly string[], arch: string = process.arch): SeccompProfile {
  const has = new Set(caps);
  const syscalls: SeccompRule[] = [{ names: words(ALWAYS), action: 'SCMP_ACT_ALLOW' }];
  syscalls.push({
    names: ['socket'],
    action: 'SCMP_ACT_ALLOW',
    args: [{ index: 0, value: AF_VSOCK, op: 'SCMP_CMP_NE' }],
  });
  // personality(2): only the values glibc and setarch use for a plain process.
  for (const persona of [0x0, 0x8, 0x20000, 0x20008, 0xffffffff]) {
    syscalls.push({ names: ['personality'], action: 'SCMP_ACT_ALLOW', args: [{ index: 0, value: persona, op: 'SCMP_CMP_EQ' }] });
  }
  const archCalls = ARCH_CALLS[arch];
  if (archCalls) syscalls.push({ names: words(archCalls.calls), action: 'SCMP_ACT_ALLOW' });
  for (const [cap, calls] of Object.entries(CAP_CALLS)) {
    if (has.has(cap)) syscalls.push({ names: words(calls), action: 'SCMP_ACT_ALLOW' });
  }
  if (!has.has('CAP_SYS_ADMIN')) {
    // clone without namespace flags (fork, threads); clone3 cannot be filtered
    // by its flags (they sit behind a pointer), so it says ENOSYS and libcs fall back to clone.
    syscalls.push({
      names: ['clone'],
      action: 'SCMP_ACT_ALLOW',
      args: [{ index: 0, value: CLONE_NAMESPACE_FLAGS, valueTwo: 0, op: 'SCMP_CMP_MASKED_EQ' }],
    });
    syscalls.push({ names: ['clone3'], action: 'SCMP_ACT_ERRNO', errnoRet: ENOSYS });
  }
  return {
    defaultAction: 'SCMP_ACT_ERRNO',
    defaultErrnoRet: EPERM,
    architectures: archCalls?.arches ?? [],
    syscalls,
  };
}
