/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Kernel API differences between the kernels this driver supports.
 *
 * One source tree builds against Linux 6.1 and 6.12.  Every difference is
 * decided here, by probing for a symbol that arrived with the change, not
 * by version numbers, so that distribution kernels with backports pick the
 * right side.  Each probe names the upstream change it covers.
 */
#ifndef _NBD_COMPAT_H
#define _NBD_COMPAT_H

#include <linux/blkdev.h>
#include <linux/blk-mq.h>

/*
 * Linux 6.12, "move asm/unaligned.h to linux/unaligned.h": the header
 * moved; probe for the file itself.
 */
#if __has_include(<linux/unaligned.h>)
#include <linux/unaligned.h>
#else
#include <asm/unaligned.h>
#endif

/*
 * Linux 6.5, "block: pass a gendisk to ->open" and "block: remove the
 * unused mode argument to ->release": ->open takes the gendisk and a
 * blk_mode_t, ->release only the gendisk.  BLK_OPEN_READ arrived with
 * blk_mode_t in the same series.
 */
#ifdef BLK_OPEN_READ
#define NBD_HAVE_BLK_MODE_T 1
#define nbd_mode_t		blk_mode_t
#define NBD_OPEN_ARGS		struct gendisk *disk, blk_mode_t mode
#define NBD_OPEN_DISK		(disk)
#define NBD_RELEASE_ARGS	struct gendisk *disk
#else
#define nbd_mode_t		fmode_t
#define NBD_OPEN_ARGS		struct block_device *bdev, fmode_t mode
#define NBD_OPEN_DISK		(bdev->bd_disk)
#define NBD_RELEASE_ARGS	struct gendisk *disk, fmode_t mode
#endif

/*
 * Linux 6.11, "block: move the nonrot flag to queue_limits" and the rest
 * of that series: queue features (write cache, FUA, rotational) live in
 * queue_limits.features and every limit is changed through
 * queue_limits_start_update()/queue_limits_commit_update(); the
 * blk_queue_*() setters are gone.  blk_mq_alloc_disk() takes the initial
 * limits since 6.9 ("block: pass a queue_limits argument to
 * blk_mq_alloc_disk").  BLK_FEAT_ROTATIONAL marks the newer world.
 */
#ifdef BLK_FEAT_ROTATIONAL
#define NBD_HAVE_QUEUE_FEATURES 1
#endif

/**
 * struct nbd_qlimits - the queue limits this driver controls
 * @blksize: logical block size in bytes
 * @max_hw_sectors: largest read or write, in 512-byte sectors
 * @max_discard_sectors: largest discard (0: no discard support)
 * @max_write_zeroes_sectors: largest write-zeroes (0: not supported)
 * @write_cache: the server has a volatile cache (it accepts FLUSH)
 * @fua: the server honours FUA on writes (only with @write_cache)
 * @rotational: seeks are expensive on the server
 * @physical: physical block size and smallest efficient I/O (0: @blksize)
 * @io_opt: optimal I/O size (0: none)
 */
struct nbd_qlimits {
	unsigned int blksize;
	unsigned int max_hw_sectors;
	unsigned int max_discard_sectors;
	unsigned int max_write_zeroes_sectors;
	bool write_cache;
	bool fua;
	bool rotational;
	unsigned int physical;
	unsigned int io_opt;
};

/*
 * BLK_STS_INVAL ("invalid size or alignment", EINVAL to the caller) came
 * with the block layer's atomic write checks (Linux 6.11, "block: Add
 * core atomic write support" and the series around it).  Before it, no
 * block status maps to EINVAL: use EIO's.
 */
#ifdef BLK_STS_INVAL
#define NBD_STS_INVAL	BLK_STS_INVAL
#else
#define NBD_STS_INVAL	BLK_STS_IOERR
#endif

#ifdef NBD_HAVE_QUEUE_FEATURES
static inline void nbd_qlimits_fill(struct queue_limits *lim,
				    const struct nbd_qlimits *l)
{
	lim->logical_block_size = l->blksize;
	lim->physical_block_size = l->physical ?: l->blksize;
	lim->io_min = lim->physical_block_size;
	lim->io_opt = l->io_opt;
	lim->max_hw_sectors = l->max_hw_sectors;
	lim->max_segments = USHRT_MAX;
	lim->max_segment_size = UINT_MAX;
	lim->max_hw_discard_sectors = l->max_discard_sectors;
	lim->discard_granularity = l->max_discard_sectors ? l->blksize : 0;
	lim->max_write_zeroes_sectors = l->max_write_zeroes_sectors;
	lim->features &= ~(BLK_FEAT_WRITE_CACHE | BLK_FEAT_FUA |
			   BLK_FEAT_ROTATIONAL);
	if (l->write_cache)
		lim->features |= BLK_FEAT_WRITE_CACHE;
	if (l->fua)
		lim->features |= BLK_FEAT_FUA;
	if (l->rotational)
		lim->features |= BLK_FEAT_ROTATIONAL;
}

static inline struct gendisk *nbd_alloc_disk(struct blk_mq_tag_set *set,
					     const struct nbd_qlimits *l,
					     void *queuedata)
{
	struct queue_limits lim = { };

	nbd_qlimits_fill(&lim, l);
	return blk_mq_alloc_disk(set, &lim, queuedata);
}

/* The caller has frozen the queue. */
static inline int nbd_apply_qlimits(struct request_queue *q,
				    const struct nbd_qlimits *l)
{
	struct queue_limits lim = queue_limits_start_update(q);

	nbd_qlimits_fill(&lim, l);
	return queue_limits_commit_update(q, &lim);
}
#else
/* The caller has frozen the queue (or it is not live yet). */
static inline int nbd_apply_qlimits(struct request_queue *q,
				    const struct nbd_qlimits *l)
{
	blk_queue_logical_block_size(q, l->blksize);
	blk_queue_physical_block_size(q, l->physical ?: l->blksize);
	blk_queue_io_min(q, l->physical ?: l->blksize);
	blk_queue_io_opt(q, l->io_opt);
	blk_queue_max_hw_sectors(q, l->max_hw_sectors);
	blk_queue_max_segments(q, USHRT_MAX);
	blk_queue_max_segment_size(q, UINT_MAX);
	blk_queue_max_discard_sectors(q, l->max_discard_sectors);
	q->limits.discard_granularity = l->max_discard_sectors ?
					l->blksize : 0;
	blk_queue_max_write_zeroes_sectors(q, l->max_write_zeroes_sectors);
	blk_queue_write_cache(q, l->write_cache, l->fua);
	if (l->rotational)
		blk_queue_flag_clear(QUEUE_FLAG_NONROT, q);
	else
		blk_queue_flag_set(QUEUE_FLAG_NONROT, q);
	return 0;
}

static inline struct gendisk *nbd_alloc_disk(struct blk_mq_tag_set *set,
					     const struct nbd_qlimits *l,
					     void *queuedata)
{
	struct gendisk *disk = blk_mq_alloc_disk(set, queuedata);

	if (!IS_ERR(disk)) {
		blk_queue_flag_clear(QUEUE_FLAG_ADD_RANDOM, disk->queue);
		nbd_apply_qlimits(disk->queue, l);
	}
	return disk;
}
#endif

#endif /* _NBD_COMPAT_H */
