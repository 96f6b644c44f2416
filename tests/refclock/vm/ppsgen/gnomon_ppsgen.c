// SPDX-License-Identifier: GPL-2.0
/*
 * gnomon_ppsgen: a PPS source whose assert edge is the start of every
 * second of CLOCK_REALTIME (plus phase_us), for gnomon's guest tests
 * (tests/refclock/vm). The edge is fired by an absolute CLOCK_REALTIME
 * hrtimer and time-stamped by pps_get_ts() in the timer's callback, as a
 * PPS interrupt handler would time-stamp a real pulse: the timestamp is
 * late by the timer's latency, the rest is exact.
 *
 * info.path names the serial port the pulse belongs to ("path"), so that a
 * program looking for the PPS device of a serial port (gpsd scans
 * /sys/class/pps/pps?/path) finds this one.
 *
 *   insmod gnomon_ppsgen.ko path=/dev/ttyS1 phase_us=0
 */
#include <linux/hrtimer.h>
#include <linux/ktime.h>
#include <linux/module.h>
#include <linux/pps_kernel.h>
#include <linux/string.h>
#include <linux/time64.h>

static char *path = "";
module_param(path, charp, 0444);
MODULE_PARM_DESC(path, "the serial port this PPS belongs to (sysfs path attribute)");

static int phase_us;
module_param(phase_us, int, 0444);
MODULE_PARM_DESC(phase_us, "microseconds after the second at which the edge fires (0 ... 999999)");

static struct pps_device *ppsgen_dev;
static struct hrtimer ppsgen_timer;

/* The next second of CLOCK_REALTIME, plus the phase, after now. */
static ktime_t ppsgen_next(void)
{
	struct timespec64 now;
	time64_t sec;

	ktime_get_real_ts64(&now);
	sec = now.tv_sec;
	if (now.tv_nsec >= (long)phase_us * NSEC_PER_USEC)
		sec++;
	return ktime_set(sec, (unsigned long)phase_us * NSEC_PER_USEC);
}

static enum hrtimer_restart ppsgen_fire(struct hrtimer *t)
{
	struct pps_event_time ts;

	pps_get_ts(&ts);
	pps_event(ppsgen_dev, &ts, PPS_CAPTUREASSERT, NULL);
	hrtimer_set_expires(t, ppsgen_next());
	return HRTIMER_RESTART;
}

static struct pps_source_info ppsgen_info = {
	.name = "gnomon_ppsgen",
	.mode = PPS_CAPTUREASSERT | PPS_OFFSETASSERT | PPS_CANWAIT | PPS_TSFMT_TSPEC,
	.owner = THIS_MODULE,
};

static int __init ppsgen_init(void)
{
	if (phase_us < 0 || phase_us >= USEC_PER_SEC) {
		pr_err("gnomon_ppsgen: phase_us %d outside 0 ... 999999\n", phase_us);
		return -EINVAL;
	}
	strscpy(ppsgen_info.path, path, sizeof(ppsgen_info.path));
	ppsgen_dev = pps_register_source(&ppsgen_info, PPS_CAPTUREASSERT | PPS_OFFSETASSERT);
	if (IS_ERR(ppsgen_dev)) {
		pr_err("gnomon_ppsgen: pps_register_source: %ld\n", PTR_ERR(ppsgen_dev));
		return PTR_ERR(ppsgen_dev);
	}
	hrtimer_init(&ppsgen_timer, CLOCK_REALTIME, HRTIMER_MODE_ABS);
	ppsgen_timer.function = ppsgen_fire;
	hrtimer_start(&ppsgen_timer, ppsgen_next(), HRTIMER_MODE_ABS);
	dev_info(&ppsgen_dev->dev, "gnomon_ppsgen: an edge every second of CLOCK_REALTIME + %d us, path \"%s\"\n",
		 phase_us, ppsgen_info.path);
	return 0;
}

static void __exit ppsgen_exit(void)
{
	hrtimer_cancel(&ppsgen_timer);
	pps_unregister_source(ppsgen_dev);
}

module_init(ppsgen_init);
module_exit(ppsgen_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("a PPS edge at every second of CLOCK_REALTIME, for gnomon's tests");
