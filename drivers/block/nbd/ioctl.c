// SPDX-License-Identifier: GPL-2.0
/*
 * Network Block Device driver: the ioctl interface (nbd-client -L,
 * qemu-nbd).
 *
 * A session configured through ioctls is created by the first ioctl that
 * needs one, runs while a task sleeps in NBD_DO_IT, and ends with
 * NBD_CLEAR_SOCK or when the last opener closes the device.
 */
#include <linux/blkdev.h>
#include <linux/capability.h>
#include <linux/overflow.h>

#include "nbd.h"
#include "transport.h"

/* The session ioctls configure; created on first use. */
static struct nbd_config *nbd_ioctl_config(struct nbd_device *nbd)
{
	return nbd->config ?: nbd_config_create(nbd);
}

static int nbd_do_it(struct nbd_device *nbd)
{
	struct nbd_config *config;
	int ret;

	mutex_lock(&nbd->config_lock);
	config = nbd->config;
	if (!config) {
		dev_err(nbd_to_dev(nbd), "NBD_DO_IT without a socket\n");
		ret = -EINVAL;
		goto out_unlock;
	}
	if (test_bit(NBD_RT_BOUND, &config->flags)) {
		ret = -EINVAL;
		goto out_unlock;
	}
	ret = nbd_start_device(nbd);
	if (ret)
		goto out_unlock;
	refcount_inc(&nbd->config_refs);
	mutex_unlock(&nbd->config_lock);

	ret = wait_event_interruptible(config->recv_wq,
				       !atomic_read(&config->recv_threads));
	if (ret) {
		dev_info(nbd_to_dev(nbd),
			 "NBD_DO_IT interrupted by a signal, disconnecting\n");
		set_bit(NBD_RT_DISCONNECT_REQUESTED, &config->flags);
		nbd_shutdown_conns(config);
		ret = -EINTR;
	} else if (test_bit(NBD_RT_DISCONNECT_REQUESTED, &config->flags)) {
		ret = 0;
	} else if (test_bit(NBD_RT_TIMEDOUT, &config->flags)) {
		ret = -ETIMEDOUT;
	} else {
		ret = -ECONNRESET;
	}
	/* Bounded: the receivers see their sockets shut down. */
	nbd_wait_receivers(nbd, config);

	/* The session is over: nothing may read the dead device. */
	mutex_lock(&nbd->config_lock);
	if (nbd->config == config && get_capacity(nbd->disk))
		nbd_update_capacity(nbd, 0);
	mutex_unlock(&nbd->config_lock);
	nbd_config_put(nbd);
	return ret;

out_unlock:
	mutex_unlock(&nbd->config_lock);
	return ret;
}

/* What __nbd_ioctl() leaves to its caller, once config_lock is dropped. */
enum {
	NBD_IOCTL_PUT = 1,	/* drop the owner reference */
	NBD_IOCTL_WAIT_DISC,	/* wait for the soft disconnect it began */
};

/* Returns 0, a negative errno, or an NBD_IOCTL_* for the caller. */
static int __nbd_ioctl(struct nbd_device *nbd, unsigned int cmd,
		       unsigned long arg)
{
	struct nbd_config *config = nbd->config;
	u64 bytes;

	if (config && test_bit(NBD_RT_BOUND, &config->flags) &&
	    cmd != NBD_DISCONNECT && cmd != NBD_CLEAR_SOCK) {
		dev_err(nbd_to_dev(nbd),
			"cannot use the ioctl interface on a netlink controlled device\n");
		return -EINVAL;
	}

	switch (cmd) {
	case NBD_DISCONNECT:
		if (!config)
			return 0;
		if (test_bit(NBD_RT_BOUND, &config->flags))
			return NBD_IOCTL_PUT;
		/* NBD_DO_IT returns once the connections have ended. */
		nbd_disconnect_start(config);
		return NBD_IOCTL_WAIT_DISC;
	case NBD_CLEAR_SOCK:
		if (!config)
			return 0;
		if (!test_bit(NBD_RT_BOUND, &config->flags) &&
		    !test_bit(NBD_RT_STARTED, &config->flags)) {
			/* nbd-client clears before it sets up: keep sizes */
			nbd_clear_conns(config);
			return 0;
		}
		set_bit(NBD_RT_DISCONNECT_REQUESTED, &config->flags);
		nbd_shutdown_conns(config);
		return NBD_IOCTL_PUT;
	case NBD_CLEAR_QUE:
	case NBD_PRINT_DEBUG:
		return 0;
	}

	config = nbd_ioctl_config(nbd);
	if (IS_ERR(config))
		return PTR_ERR(config);

	switch (cmd) {
	case NBD_SET_SOCK:
		if (arg > INT_MAX)
			return -EBADF;
		return nbd_add_socket(config, arg, false, NULL);
	case NBD_SET_BLKSIZE:
		if (test_bit(NBD_RT_STARTED, &config->flags) &&
		    arg != config->blksize) {
			dev_err(nbd_to_dev(nbd),
				"cannot change the block size of a connected device\n");
			return -EBUSY;
		}
		if (nbd_check_blksize(nbd, arg))
			return -EINVAL;
		config->blksize = arg;
		/* Keep the size in whole blocks, as upstream does. */
		config->bytesize = round_down(config->bytesize, arg);
		return 0;
	case NBD_SET_SIZE:
		return nbd_set_size(config, arg, 0);
	case NBD_SET_SIZE_BLOCKS:
		if (check_mul_overflow((u64)arg, (u64)config->blksize, &bytes)) {
			dev_err(nbd_to_dev(nbd), "size of %lu blocks overflows\n",
				arg);
			return -EINVAL;
		}
		return nbd_set_size(config, bytes, 0);
	case NBD_SET_TIMEOUT:
		nbd_set_timeout(nbd, arg);
		return 0;
	case NBD_SET_FLAGS:
		config->server_flags = arg & NBD_KNOWN_SERVER_FLAGS;
		return 0;
	default:
		return -ENOTTY;
	}
}

/**
 * nbd_ioctl() - block device ioctl handler
 * @bdev: the block device
 * @mode: open mode
 * @cmd: NBD_* ioctl number
 * @arg: its argument (passed by value for every NBD ioctl)
 *
 * Return: 0 or a negative errno.
 */
int nbd_ioctl(struct block_device *bdev, nbd_mode_t mode, unsigned int cmd,
	      unsigned long arg)
{
	struct nbd_device *nbd = bdev->bd_disk->private_data;
	struct nbd_config *config;
	int ret;

	if (!capable(CAP_SYS_ADMIN))
		return -EPERM;
	if (_IOC_TYPE(cmd) != 0xab)
		return -ENOTTY;

	if (cmd == NBD_DO_IT)
		return nbd_do_it(nbd);

	mutex_lock(&nbd->config_lock);
	ret = __nbd_ioctl(nbd, cmd, arg);
	config = nbd->config;
	if (ret == NBD_IOCTL_WAIT_DISC &&
	    !refcount_inc_not_zero(&nbd->config_refs))
		ret = 0;
	mutex_unlock(&nbd->config_lock);

	switch (ret) {
	case NBD_IOCTL_PUT:
		nbd_disconnect_and_put(nbd, cmd == NBD_DISCONNECT);
		return 0;
	case NBD_IOCTL_WAIT_DISC:
		nbd_disconnect_wait(nbd, config);
		nbd_config_put(nbd);
		return 0;
	default:
		return ret;
	}
}
