/*
 * Sandbox ("pause") process for the modelship single-node cluster.
 *
 * It holds a pod's namespaces open: it sleeps until a signal arrives, reaps any child
 * that is re-parented to it (it is PID 1 of the pod when PID namespaces are shared) and
 * exits 0 on SIGINT or SIGTERM. Built with `gcc -static` so the image needs no libc.
 */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t stop_requested = 0;

static void on_stop(int sig) {
    (void)sig;
    stop_requested = 1;
}

static void on_child(int sig) {
    (void)sig;
    int saved = errno;
    while (waitpid(-1, NULL, WNOHANG) > 0) {
    }
    errno = saved;
}

static int install(int sig, void (*handler)(int)) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = handler;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART | (sig == SIGCHLD ? SA_NOCLDSTOP : 0);
    return sigaction(sig, &sa, NULL);
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "-v") == 0) {
        static const char version[] = "modelship-pause 1\n";
        return write(STDOUT_FILENO, version, sizeof version - 1) < 0;
    }
    if (install(SIGINT, on_stop) || install(SIGTERM, on_stop) || install(SIGCHLD, on_child)) {
        return 1;
    }
    while (!stop_requested) {
        pause();
    }
    return 0;
}
